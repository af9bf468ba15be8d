"""Indexing throughput, incremental refresh, cold start and peak RSS.

    python -m bench.indexing [--files 1000] [--rss-chunks 100000] [--skip-baseline]

1. Full build of ``--files`` replicated handbook pages with the default embedder
   (target >= 500 chunks/s); baseline in the same run: LlamaIndex SimpleDirectoryReader +
   SentenceSplitter + VectorStoreIndex with the same embedder on the same files.
2. Refresh after 1 file changed, as % of the full build (target <= 5 %).
3. Cold start: fresh process → first retrieve on the persisted index (target <= 2 s);
   baseline: a fresh process that only imports llama_index.core.
4. Peak RSS of a fresh serving subprocess (VmHWM; see SERVE for why not ru_maxrss) with
   --rss-chunks chunks (target <= 400 MB); baseline: the same with the ~10k-chunk index.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.handbook import DEFAULT_ROOT, make_knowledge
from bot.config import Department
from bot.knowledge import KnowledgeBase, ingest
from bot.knowledge.embedders import get_embedder
from bot.knowledge.index import assemble, dept_dir, write_version

REPO = Path(__file__).resolve().parent.parent

SERVE = """
import resource, sys, time
t0 = time.perf_counter()
from pathlib import Path
from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase
kb = KnowledgeBase(state_dir=Path(sys.argv[1]))
scope = AccessScope(department=sys.argv[2], keys=frozenset({"*"}))
kb.retrieve("how do I request annual leave", scope, top_k=8)
first = time.perf_counter() - t0
for q in ["travel reimbursement", "laptop security", "hiring process", "sick leave"] * 10:
    kb.retrieve(q, scope, top_k=8)
# VmHWM is this process image's peak RSS. ru_maxrss would also do, but Linux carries the
# parent's high-water mark across fork+exec, so it reports the (big) benchmark parent.
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(first, int(hwm) / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def serve(state: Path, dept: str) -> tuple[float, float, float]:
    """(wall seconds from spawn to first answer, in-process seconds, peak RSS MB)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", SERVE, str(state), dept], cwd=REPO, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t0
    first, rss, _ = (float(x) for x in out.stdout.split()[-3:])
    return wall, first, rss


def knowledge_folder(root: Path, files: int, handbook: Path) -> Path:
    knowledge = root / "knowledge" / "handbook"
    per_copy = len([p for p in handbook.rglob("*.md") if p.name not in {"LICENSE.md", "CONTRIBUTING.md"}])
    make_knowledge(knowledge, copies=-(-files // per_copy), root=handbook)
    for extra in sorted(knowledge.rglob("*.md"))[files:]:
        extra.unlink()
    return knowledge


def baseline_build(knowledge: Path) -> tuple[float, int]:
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from bench.retrieval import llama_embedding

    t0 = time.perf_counter()
    docs = SimpleDirectoryReader(str(knowledge), recursive=True, required_exts=[".md"]).load_data()
    nodes = SentenceSplitter(chunk_size=300, chunk_overlap=40).get_nodes_from_documents(docs)
    VectorStoreIndex(nodes, embed_model=llama_embedding())
    return time.perf_counter() - t0, len(nodes)


def big_index(state: Path, chunks: int, handbook: Path) -> int:
    """Write a ~``chunks`` index directly (parse the handbook once, replicate docs)."""
    dept = Department(name="big", title="Big", knowledge=handbook)
    base = []
    for src in ingest.scan(dept):
        with contextlib.suppress(ingest.IngestError):
            base.append(ingest.parse_file(src, dept))
    per = sum(len(d.chunks) for d in base)
    order: list[tuple[str, ingest.DocRecord | None]] = []
    for c in range(-(-chunks // per)):
        for d in base:
            variant = tuple(ingest.Chunk(f"Edition {c}. {ch.text}", ch.anchor) for ch in d.chunks)
            rel = f"e{c:03d}/{d.rel}"
            order.append((rel, ingest.DocRecord(f"big/{rel}", rel, rel, d.title, d.modified, 1, (), variant)))
    order.sort(key=lambda x: x[0])
    data = assemble(None, order, get_embedder("wordllama"))
    write_version(dept_dir(state, "big"), "big", data)
    return len(data.texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rss-chunks", type=int, default=100_000)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="deptbot-index-bench-") as tmp:
        root = Path(tmp)
        knowledge = knowledge_folder(root, args.files, args.handbook)
        dept = Department(name="handbook", title="Handbook", knowledge=knowledge)
        kb = KnowledgeBase(state_dir=root / "state")
        get_embedder("wordllama").embed(["warm up"])
        t0 = time.perf_counter()
        full = kb.refresh(dept)
        full_s = time.perf_counter() - t0
        rate = full.chunks / full_s
        if not args.skip_baseline:
            li_s, li_chunks = baseline_build(knowledge)
            rows.append(
                ("full build (LlamaIndex baseline)", f"{li_s:.2f} s", f"{li_chunks / li_s:.0f} chunks/s", "")
            )
        rows.insert(
            0,
            (
                f"full build ({full.total_files} files, {full.chunks} chunks)",
                f"{full_s:.2f} s",
                f"{rate:.0f} chunks/s",
                "PASS" if rate >= 500 else "FAIL",
            ),
        )
        target = sorted(knowledge.rglob("*.md"))[len(full.failed) + 3]
        times = []
        for i in range(3):
            target.write_text(
                target.read_text(encoding="utf-8") + f"\n\nChanged line {i}.\n", encoding="utf-8"
            )
            t0 = time.perf_counter()
            report = kb.refresh(dept)
            times.append(time.perf_counter() - t0)
            assert report.changed == 1, report
        one = float(np.median(times))
        rows.append(
            (
                "refresh after 1 file changed (median of 3)",
                f"{one:.3f} s",
                f"{100 * one / full_s:.1f} % of full",
                "PASS" if one / full_s <= 0.05 else "FAIL",
            )
        )
        t0 = time.perf_counter()
        kb.refresh(dept)
        rows.append(("refresh with nothing changed", f"{time.perf_counter() - t0:.3f} s", "", ""))
        colds = [serve(root / "state", "handbook") for _ in range(3)]
        wall = float(np.median([c[0] for c in colds]))
        rows.append(
            (
                f"cold start → first answer ({full.chunks} chunks)",
                f"{wall:.2f} s",
                f"in-process {np.median([c[1] for c in colds]):.2f} s",
                "PASS" if wall <= 2 else "FAIL",
            )
        )
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import llama_index.core"], check=True)
        rows.append(
            (
                "baseline: fresh process importing llama_index.core",
                f"{time.perf_counter() - t0:.2f} s",
                "",
                "",
            )
        )
        rows.append((f"peak RSS serving {full.chunks} chunks", f"{colds[0][2]:.0f} MB", "", ""))
        t0 = time.perf_counter()
        n = big_index(root / "state", args.rss_chunks, args.handbook)
        built = time.perf_counter() - t0
        wall, _first, rss = serve(root / "state", "big")
        rows.append(
            (
                f"peak RSS serving {n} chunks",
                f"{rss:.0f} MB",
                f"built in {built:.0f} s; cold {wall:.2f} s",
                "PASS" if rss <= 400 else "FAIL",
            )
        )
    print(f"\n{'measure':<52} {'value':>10}  {'detail':<32} {'target'}")
    for name, value, detail, verdict in rows:
        print(f"{name:<52} {value:>10}  {detail:<32} {verdict}")


if __name__ == "__main__":
    main()
