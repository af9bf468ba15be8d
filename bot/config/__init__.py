"""Load and validate ``departments/*.yaml`` and ``groups.yaml`` into frozen models.

Department files are data written by people and decide who may read what, so:

* every file is read by ``bot.yamlstrict`` (no aliases, merge keys or duplicate keys — a
  second ``ask:`` line is an error, not a silent replacement; group names that collide
  after lower-casing are an error too);
* every error names the file, the line, the field and what is wrong, and
  ``check_company`` collects all of them in one pass (``deptbot check`` prints them);
* nothing is half-loaded: a Company exists only when there is no problem at all;
* a knowledge folder must resolve inside the configuration tree (the parent of the
  departments folder) or an operator's ``knowledge.allowed_roots``, and no two
  departments may share documents (the same folder, or one inside the other).

The modules, each owning one thing: ``access`` (access entries), ``models`` (Department,
Template, Channels), ``problems`` (strict YAML with line numbers, problems
located and shown), ``groups`` (``groups.yaml`` and directory sources), ``placement``
(where knowledge folders may live) and ``company`` (loading and cross-checks). Import the
names from ``bot.config``.
"""

from bot.config.access import ENTRY_RE, access_lists, check_entries, normalize_entry
from bot.config.company import Company, ConfigReport, check_company, inspect_company, load_company
from bot.config.groups import (
    EMAIL_RE,
    SOURCE_KINDS,
    BadGroupRef,
    GroupRef,
    parse_group_ref,
    unavailable_sources,
)
from bot.config.models import ACCESS_FILE, NAME_RE, Channels, Department, Template
from bot.config.placement import knowledge_roots
from bot.config.problems import describe, read_yaml

__all__ = [
    "ACCESS_FILE",
    "EMAIL_RE",
    "ENTRY_RE",
    "NAME_RE",
    "SOURCE_KINDS",
    "BadGroupRef",
    "Channels",
    "Company",
    "ConfigReport",
    "Department",
    "GroupRef",
    "Template",
    "access_lists",
    "check_company",
    "check_entries",
    "describe",
    "inspect_company",
    "knowledge_roots",
    "load_company",
    "normalize_entry",
    "parse_group_ref",
    "read_yaml",
    "unavailable_sources",
]
