"""A department's ``embedder`` is checked at load: a known name in any case, else the file,
line and field, in the same words ``deptbot check`` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_company
from bot.errors import ConfigError
from bot.knowledge.embedders import embedder_names, embedder_problem
from tests.fakes import make_company


def _with_embedder(tmp_path: Path, value: str) -> tuple[Path, int]:
    make_company(tmp_path)
    path = tmp_path / "departments" / "hr.yaml"
    text = path.read_text()
    path.write_text(text + f"embedder: {value}\n")
    return tmp_path / "departments", len(text.splitlines()) + 1


@pytest.mark.parametrize("spelled", ["MiniLM", "minilm", " MINILM "])
def test_the_embedder_name_is_lower_cased(tmp_path: Path, spelled: str) -> None:
    root, _ = _with_embedder(tmp_path, repr(spelled))
    assert load_company(root).department("hr").embedder == "minilm"


def test_an_unknown_embedder_names_file_line_and_field(tmp_path: Path) -> None:
    root, line = _with_embedder(tmp_path, "minlm")
    with pytest.raises(ConfigError) as err:
        load_company(root)
    assert err.value.file is not None and err.value.file.endswith("hr.yaml")
    assert (err.value.field, err.value.line) == ("embedder", line)
    assert err.value.problem == embedder_problem("minlm")  # `deptbot check`'s words
    assert err.value.problem == "unknown embedder 'minlm'; valid embedders: minilm, wordllama"


def test_the_configuration_knows_every_embedder_profile() -> None:
    from bot.config.models import EMBEDDERS

    assert list(EMBEDDERS) == embedder_names()
