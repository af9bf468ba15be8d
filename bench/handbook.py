"""Shared helpers for the benchmarks: read the 18F handbook at run time, never copy it.

``make_knowledge`` writes a (replicated) knowledge folder into a temporary directory;
``make_beir`` derives a BEIR-format set whose queries are rule-made from the handbook:
section headings that are specific to one page, and the page's front-matter keywords
(each keyword list entry is a short, user-like query); the page is the relevant doc.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import yaml

DEFAULT_ROOT = Path(os.environ.get("DEPTBOT_HANDBOOK", "/work/shared/corpora/18f-handbook"))
SKIP = {"LICENSE.md", "CONTRIBUTING.md"}


def handbook_files(root: Path = DEFAULT_ROOT) -> list[Path]:
    if not root.is_dir():
        raise SystemExit(f"handbook corpus not found at {root} (set DEPTBOT_HANDBOOK)")
    return sorted(p for p in root.rglob("*.md") if p.name not in SKIP)


def front_matter(text: str) -> tuple[dict[str, object], str]:
    m = re.match(r"\A---\s*\n(.*?\n)---\s*\n", text, re.S)
    if not m:
        return {}, text
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError:
        meta = {}
    return (meta if isinstance(meta, dict) else {}), text[m.end() :]


def make_knowledge(
    dest: Path, *, copies: int = 1, max_files: int | None = None, root: Path = DEFAULT_ROOT
) -> int:
    """Write ``copies`` varied copies of the handbook under ``dest``; returns files written."""
    files = handbook_files(root)[:max_files]
    n = 0
    for c in range(copies):
        for p in files:
            rel = p.relative_to(root)
            out = dest / (f"copy{c:03d}" if copies > 1 else "") / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            text = p.read_text(encoding="utf-8")
            meta, body = front_matter(text)
            # The handbook's front matter is publishing data (layout, questions, steps …);
            # deptbot refuses unknown keys, so only the title is kept, as an admin would.
            title = json.dumps(str(meta.get("title") or p.stem))
            if c:
                text = f'---\ntitle: {title[:-1]} (edition {c})"\n---\nEdition {c} of this page.\n\n{body}'
            elif meta:
                text = f"---\ntitle: {title}\n---\n{body}"
            out.write_text(text, encoding="utf-8")
            n += 1
    return n


def make_beir(dest: Path, *, max_queries: int = 400, seed: int = 7, root: Path = DEFAULT_ROOT) -> Path:
    """Write corpus.jsonl, queries.jsonl and qrels/test.tsv derived from the handbook."""
    docs: dict[str, tuple[str, str]] = {}
    heads: dict[str, list[str]] = {}
    keywords: list[tuple[str, str]] = []
    for p in handbook_files(root):
        doc_id = p.relative_to(root).as_posix()
        meta, body = front_matter(p.read_text(encoding="utf-8"))
        title = str(meta.get("title") or p.stem.replace("-", " "))
        docs[doc_id] = (title, body)
        for h in re.findall(r"(?m)^#{2,3}\s+(.+?)\s*$", body):
            h = re.sub(r"[*_`]|\{%.*?%\}", "", h).strip()
            if len(h.split()) >= 2:
                heads.setdefault(h.lower(), []).append(doc_id)
        kw = meta.get("keywords")
        if isinstance(kw, str):
            for k in kw.split(","):
                if len(k.strip()) > 3:
                    keywords.append((k.strip(), doc_id))
    queries: list[tuple[str, str]] = [(h, ids[0]) for h, ids in heads.items() if len(set(ids)) == 1]
    kw_count: dict[str, int] = {}
    for k, _ in keywords:
        kw_count[k.lower()] = kw_count.get(k.lower(), 0) + 1
    queries += [(k, d) for k, d in keywords if kw_count[k.lower()] == 1]
    random.Random(seed).shuffle(queries)
    queries = queries[:max_queries]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "qrels").mkdir(exist_ok=True)
    with (dest / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, (title, body) in docs.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": body}) + "\n")
    with (
        (dest / "queries.jsonl").open("w", encoding="utf-8") as fq,
        (dest / "qrels" / "test.tsv").open("w") as fr,
    ):
        fr.write("query-id\tcorpus-id\tscore\n")
        for i, (q, doc_id) in enumerate(queries):
            fq.write(json.dumps({"_id": f"q{i}", "text": q}) + "\n")
            fr.write(f"q{i}\t{doc_id}\t1\n")
    return dest


OFF_TOPIC = [
    "What is the cafeteria menu on Tuesday?",
    "Who won the football match last night?",
    "How do I bake sourdough bread?",
    "What is the capital of Australia?",
    "Recommend a good sci-fi movie",
    "How tall is Mount Everest?",
    "What's the weather forecast for tomorrow?",
    "Translate 'good morning' into Japanese",
    "How many calories are in a banana?",
    "Best way to train a puppy to sit",
    "When does the parking garage car wash open?",
    "What is the recipe for lasagna?",
]
