"""The department ``pii`` setting: default, accepted values, and a clear error for others."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_company
from bot.errors import ConfigError
from tests.fakes import make_company


def test_default_is_route_private(tmp_path: Path) -> None:
    company = make_company(tmp_path)
    assert {d.pii for d in company} == {"route_private"}


@pytest.mark.parametrize("mode", ["route_private", "redact", "block"])
def test_every_mode_loads(tmp_path: Path, mode: str) -> None:
    make_company(tmp_path)
    hr = tmp_path / "departments" / "hr.yaml"
    hr.write_text(hr.read_text() + f"pii: {mode}\n")
    assert load_company(tmp_path / "departments").department("hr").pii == mode


def test_unknown_value_names_file_line_and_field(tmp_path: Path) -> None:
    make_company(tmp_path)
    eng = tmp_path / "departments" / "eng.yaml"
    eng.write_text("title: Engineering\nknowledge: ../knowledge/eng\npii: redacted\nask: ['*']\n")
    with pytest.raises(ConfigError) as err:
        load_company(tmp_path / "departments")
    assert err.value.file is not None and err.value.file.endswith("eng.yaml")
    assert (err.value.line, err.value.field) == (3, "pii")
    assert "'route_private', 'redact' or 'block'" in err.value.problem
