"""Department configs: the documented format loads; every mistake names file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_company
from bot.core.types import Classification
from bot.errors import ConfigError
from tests.fakes import make_company


def test_sample_format_loads(company) -> None:  # type: ignore[no-untyped-def]
    hr = company.department("hr")
    assert hr.title == "Human Resources"
    assert hr.classification is Classification.INTERNAL
    assert hr.admins == ["group:hr-admins"]
    assert hr.templates["offer-letter"].allowed == ["group:hr-team"]
    assert hr.channels.slack == ["C0HRHELP"]
    assert hr.dont_know_below == 0.35
    assert hr.knowledge.is_dir()
    assert company.groups["hr-admins"] == frozenset({"hank@example.com"})


def _break(tmp_path: Path, name: str, text: str) -> Path:
    make_company(tmp_path)
    path = tmp_path / "departments" / name
    path.write_text(text)
    return tmp_path / "departments"


def test_unknown_key_names_file_line_and_field(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yaml", "title: HR\nknowledge: ../knowledge/hr\nclasification: internal\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.file is not None and err.value.file.endswith("hr.yaml")
    assert err.value.line == 3
    assert err.value.field == "clasification"
    assert "unknown field" in err.value.user_message


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yaml", "title: HR\nknowledge: ../knowledge/hr\nask: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.line is not None and err.value.line >= 3
    assert "not valid YAML" in str(err.value)


def test_bad_classification_value(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yaml", "title: HR\nknowledge: ../knowledge/hr\nclassification: secret\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert (err.value.field, err.value.line) == ("classification", 3)
    assert "public, internal, confidential, restricted" in str(err.value)


def test_missing_knowledge_folder(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yaml", "title: HR\nknowledge: ../knowledge/nowhere\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.field == "knowledge" and "does not exist" in str(err.value)


def test_group_that_does_not_exist(tmp_path: Path) -> None:
    root = _break(
        tmp_path,
        "hr.yaml",
        'title: HR\nknowledge: ../knowledge/hr\nask:\n  - "*@example.com"\n  - group:ghosts\n',
    )
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.field == "ask[1]" and err.value.line == 5
    assert "ghosts" in str(err.value)


def test_duplicate_department_names(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yml", "title: HR again\nknowledge: ../knowledge/hr\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert "duplicate department name 'hr'" in str(err.value)


def test_template_needs_input_placeholder(tmp_path: Path) -> None:
    text = (
        "title: HR\nknowledge: ../knowledge/hr\n"
        "templates:\n  t1:\n    description: d\n    prompt: no placeholder\n"
    )
    root = _break(tmp_path, "hr.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.field == "templates.t1.prompt" and err.value.line == 6


def test_bad_access_entry(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yaml", 'title: HR\nknowledge: ../knowledge/hr\nadmins: ["hank at example"]\n')
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.field == "admins" and "not an access entry" in str(err.value)


def test_missing_required_title(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yaml", "knowledge: ../knowledge/hr\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.field == "title" and "is required" in str(err.value)


def test_channel_mapped_twice(tmp_path: Path) -> None:
    root = _break(tmp_path, "hr.yaml", "title: HR\nknowledge: ../knowledge/hr\nchannels:\n  slack: [C0FIN]\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert "already mapped" in str(err.value)
    assert (err.value.field, err.value.line) == ("channels.slack[0]", 4)


def test_bad_groups_file(tmp_path: Path) -> None:
    make_company(tmp_path)
    (tmp_path / "departments" / "groups.yaml").write_text("hr-team: [alice@example.com, not-an-email]\n")
    with pytest.raises(ConfigError) as err:
        load_company(tmp_path / "departments")
    assert err.value.field == "hr-team[1]" and err.value.line == 1


def test_docs_url_needs_a_path_placeholder(tmp_path: Path) -> None:
    root = _break(
        tmp_path, "hr.yaml", "title: HR\nknowledge: ../knowledge/hr\ndocs_url: https://intranet/hr\n"
    )
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert (err.value.field, err.value.line) == ("docs_url", 3) and "{path}" in str(err.value)
