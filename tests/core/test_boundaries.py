"""bot/core stays platform-free: no Slack, botbuilder, LlamaIndex, LLM SDK or SQLite import."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {
    "slack_bolt",
    "slack_sdk",
    "botbuilder",
    "botframework",
    "llama_index",
    "anthropic",
    "openai",
    "sqlite_utils",
    "sqlite3",
    "aiohttp",
    "bm25s",
    "wordllama",
    "onnxruntime",
}
CORE = Path(__file__).resolve().parents[2] / "bot" / "core"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_platform_or_provider_library() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 6
    offenders = {str(f.relative_to(CORE)): sorted(_imports(f) & FORBIDDEN) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import slack_sdk\nfrom llama_index.core import Document\n")
    assert _imports(bad) & FORBIDDEN == {"slack_sdk", "llama_index"}
