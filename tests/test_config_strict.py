"""Department files and groups.yaml are read strictly, and every problem is reported.

A lenient reader turns mistakes into wider access: a second ``ask:`` line silently replaced
the first, a 315-byte alias bomb took 18 s and 1.1 GB, and ``HR-Team`` / ``hr-team`` both
became ``hr-team``. ``check_company`` collects every problem in one pass (schema errors in
one file do not hide the others), and knowledge folders must stay inside the configuration
tree (or an operator-allowed root) and must not overlap.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.config import check_company, knowledge_roots, load_company
from bot.errors import ConfigError
from bot.settings import Settings
from tests.fakes import make_company

BOMB = (
    "title: HR\nknowledge: ../knowledge/hr\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
)


def _company(tmp_path: Path) -> Path:
    make_company(tmp_path)
    return tmp_path / "departments"


def _problems(root: Path, **kw: object) -> list[ConfigError]:
    company, problems = check_company(root, **kw)  # type: ignore[arg-type]
    assert company is None
    return problems


# ── strict YAML ──────────────────────────────────────────────────────────────────────


def test_alias_bomb_in_a_department_file_is_refused_quickly(tmp_path: Path) -> None:
    root = _company(tmp_path)
    (root / "hr.yaml").write_text(BOMB)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert time.perf_counter() - started < 1.0
    assert err.value.file is not None and err.value.file.endswith("hr.yaml")
    assert err.value.line == 4 and "alias" in err.value.problem


def test_alias_bomb_in_groups_yaml_is_refused_quickly(tmp_path: Path) -> None:
    root = _company(tmp_path)
    bomb = "\n".join(BOMB.splitlines()[2:]).replace("a: &a", "hr-team: &a")
    (root / "groups.yaml").write_text(bomb + "\n")
    started = time.perf_counter()
    problems = _problems(root)
    assert time.perf_counter() - started < 1.0
    first = problems[0]
    assert first.file is not None and first.file.endswith("groups.yaml")
    assert first.line == 2 and "alias" in first.problem


def test_duplicate_key_in_a_department_file_names_file_line_field(tmp_path: Path) -> None:
    root = _company(tmp_path)
    (root / "hr.yaml").write_text(
        'title: HR\nknowledge: ../knowledge/hr\nask: ["group:hr-team"]\nask: ["*"]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.file is not None and err.value.file.endswith("hr.yaml")
    assert (err.value.line, err.value.field) == (4, "ask")
    assert "duplicate key" in err.value.problem


def test_group_defined_twice_is_an_error(tmp_path: Path) -> None:
    root = _company(tmp_path)
    (root / "groups.yaml").write_text(
        "hr-team: [alice@example.com]\nhr-admins: [hank@example.com]\n"
        "finance-team: [carol@example.com]\nfinance-admins: [carol@example.com]\n"
        "engineering: [bob@example.com]\nhr-team: [grace@example.com]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.file is not None and err.value.file.endswith("groups.yaml")
    assert (err.value.line, err.value.field) == (6, "hr-team")


def test_group_names_that_collide_after_lower_casing_are_an_error(tmp_path: Path) -> None:
    root = _company(tmp_path)
    (root / "groups.yaml").write_text(
        "hr-team: [alice@example.com]\nhr-admins: [hank@example.com]\n"
        "finance-team: [carol@example.com]\nfinance-admins: [carol@example.com]\n"
        "engineering: [bob@example.com]\nHR-Team: [grace@example.com]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert (err.value.line, err.value.field) == (6, "HR-Team")
    assert "hr-team" in err.value.problem and "line 1" in err.value.problem


# ── every problem, not the first ─────────────────────────────────────────────────────


def test_check_company_reports_every_problem_in_every_file(tmp_path: Path) -> None:
    root = _company(tmp_path)
    (root / "hr.yaml").write_text(
        "title: HR\nknowledge: ../knowledge/hr\nclasification: internal\nclassification: secret\n"
    )
    (root / "eng.yaml").write_text("knowledge: ../knowledge/eng\nask: [group:ghosts]\n")
    (root / "finance.yaml").write_text("title: Finance\nknowledge: ../knowledge/finance\nask: [unclosed\n")
    (root / "groups.yaml").write_text(
        "hr-team: [alice@example.com, not-an-email]\nhr-admins: [hank@example.com]\n"
        "finance-team: [carol@example.com]\nfinance-admins: [carol@example.com]\n"
        "engineering: [bob@example.com]\n"
    )
    found = {(Path(p.file or "").name, p.line, p.field) for p in _problems(root)}
    assert ("hr.yaml", 3, "clasification") in found
    assert ("hr.yaml", 4, "classification") in found
    assert ("eng.yaml", None, "title") in found
    assert ("eng.yaml", 2, "ask[0]") in found  # cross-reference checked despite the schema error
    assert any(name == "finance.yaml" and line is not None and line >= 3 for name, line, _ in found)
    assert ("groups.yaml", 1, "hr-team[1]") in found


def test_valid_company_has_no_problems(tmp_path: Path) -> None:
    company, problems = check_company(_company(tmp_path))
    assert problems == [] and company is not None and set(company.departments) == {"hr", "finance", "eng"}


def test_load_company_still_raises_for_callers_that_need_a_company(tmp_path: Path) -> None:
    root = _company(tmp_path)
    (root / "eng.yaml").write_text("knowledge: ../knowledge/eng\n")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.field == "title"


# ── knowledge folders: inside the tree, not overlapping ─────────────────────────────


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "elsewhere" / "hr-docs"
    outside.mkdir(parents=True)
    return outside


def test_knowledge_outside_the_configuration_tree_is_an_error(tmp_path: Path) -> None:
    root = _company(tmp_path / "company")
    outside = _outside(tmp_path)
    (root / "hr.yaml").write_text(f"title: HR\nknowledge: {outside}\n")
    (problem,) = _problems(root)
    assert (Path(problem.file or "").name, problem.line, problem.field) == ("hr.yaml", 2, "knowledge")
    assert "outside" in problem.problem and "allowed_roots" in problem.problem


def test_knowledge_symlink_leading_outside_is_an_error(tmp_path: Path) -> None:
    root = _company(tmp_path / "company")
    outside = _outside(tmp_path)
    (tmp_path / "company" / "knowledge" / "linked").symlink_to(outside)
    (root / "hr.yaml").write_text("title: HR\nknowledge: ../knowledge/linked\n")
    (problem,) = _problems(root)
    assert problem.field == "knowledge" and "outside" in problem.problem


def test_knowledge_outside_is_fine_inside_an_allowed_root(tmp_path: Path) -> None:
    root = _company(tmp_path / "company")
    outside = _outside(tmp_path)
    (root / "hr.yaml").write_text(f"title: HR\nknowledge: {outside}\n")
    company, problems = check_company(root, allowed_roots=(tmp_path / "elsewhere",))
    assert problems == [] and company is not None
    assert company.department("hr").knowledge == outside.resolve()


def test_overlapping_knowledge_folders_name_both_departments(tmp_path: Path) -> None:
    root = _company(tmp_path)
    (root / "eng.yaml").write_text("title: Engineering\nknowledge: ../knowledge/finance/payroll\n")
    (root / "hr.yaml").write_text("title: HR\nknowledge: ../knowledge/finance\n")
    problems = _problems(root)
    assert len(problems) == 3  # eng ⊂ finance, eng ⊂ hr, hr == finance: one per pair
    text = " | ".join(str(p) for p in problems)
    assert "'eng'" in text and "'finance'" in text and "'hr'" in text
    assert "eng.yaml" in text and "finance.yaml" in text and "hr.yaml" in text
    assert all(p.field == "knowledge" for p in problems)


def test_allowed_roots_setting_must_be_absolute_folders(tmp_path: Path) -> None:
    override = tmp_path / "s.toml"
    override.write_text('[knowledge]\nallowed_roots = ["/srv/docs", "relative/docs"]\n')
    settings = Settings.load(departments=tmp_path, state=tmp_path / "st", settings_file=override, env={})
    with pytest.raises(ConfigError) as err:
        knowledge_roots(settings)
    assert err.value.field == "knowledge.allowed_roots" and "absolute" in err.value.problem
    default = Settings.load(departments=tmp_path, state=tmp_path / "st", env={})
    assert knowledge_roots(default) == ()
