"""Segmented refresh: cost of a 1-file change, bytes written, build vs serving memory.

    nice -n 10 python -m bench.refresh [--chunks 30000] [--old-tree /tmp/old-segments]

Builds a knowledge folder of about ``--chunks`` chunks (replicated 18F handbook pages),
then, each step in a fresh subprocess so peak RSS (VmHWM) is the step's own:

1. full build (``deptbot index``'s path) — seconds and peak RSS;
2. serving it — peak and steady RSS of a process that loads it and answers 40 questions;
3. 1-file refresh, 3 times (median) in a warm process — seconds (and how much of it is
   the folder scan every refresh starts with), bytes written under the index folder
   (files modified since the refresh started); then retrieve latency from a second
   thread asking ~10 questions a second, idle and WHILE two more refreshes run in the
   same process (how ``deptbot serve`` runs them: the watcher's worker thread);

and with ``--old-tree`` (a ``git worktree add`` of the code before segments), steps 1 and 3
again with that code on its own state folder: "today" from the same run. Target: a
1-file refresh of a 100k-chunk department well under 1 s, peak RSS of the build ≤ 2× the
serving RSS. Default size keeps the run under ~3 minutes; the issue's figure needs
``--chunks 100000`` (about 6 minutes with ``--old-tree``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.handbook import DEFAULT_ROOT, handbook_files, make_knowledge

REPO = Path(__file__).resolve().parent.parent
CHUNKS_PER_COPY = 2512  # chunks of one copy of the 18F handbook (as chunked today)

COMMON = """
import json, os, sys, time, threading
from pathlib import Path
from bot.config import Department
from bot.core.types import AccessScope
from bot.knowledge import KnowledgeBase

def status(key):
    line = [l for l in open("/proc/self/status") if l.startswith(key)][0]
    return int(line.split()[1]) / 1024

state, folder = Path(sys.argv[1]), Path(sys.argv[2])
dept = Department(name="big", title="Big", knowledge=folder)
kb = KnowledgeBase(state_dir=state)
if hasattr(kb.indexer, "build_memory_bytes") and len(sys.argv) > 3:
    kb.indexer.build_memory_bytes = int(float(sys.argv[3]) * 2**20)
scope = AccessScope(department="big", keys=frozenset({"*"}))
QUESTIONS = ["how do I request annual leave", "travel reimbursement", "laptop security",
             "hiring process", "sick leave"]

def written_since(t0):
    total = 0
    for p in (state / "indexes").rglob("*"):
        st = p.stat()
        if p.is_file() and st.st_mtime >= t0:
            total += st.st_size
    return total
"""

BUILD = (
    COMMON
    + """
kb.warm_up()
base = status("VmHWM")
t0 = time.perf_counter()
report = kb.refresh(dept)
print(json.dumps({"seconds": time.perf_counter() - t0, "chunks": report.chunks,
                  "hwm_mb": status("VmHWM"), "before_mb": base}))
"""
)

SERVE = (
    COMMON
    + """
kb.retrieve(QUESTIONS[0], scope, top_k=8)
for q in QUESTIONS * 8:
    kb.retrieve(q, scope, top_k=8)
print(json.dumps({"hwm_mb": status("VmHWM"), "rss_mb": status("VmRSS")}))
"""
)

REFRESH = (
    COMMON
    + """
from bot.knowledge import ingest
kb.warm_up()
kb.retrieve(QUESTIONS[0], scope, top_k=8)
targets = sorted(folder.rglob("*.md"))[5:10]
ingest.parse_file(ingest.scan(dept, kb.indexer.limits)[0], dept)  # one-time imports (llama_index's splitter)
scans = []
for _ in range(3):
    t0 = time.perf_counter()
    ingest.scan(dept, kb.indexer.limits)
    scans.append(time.perf_counter() - t0)

def change(i):
    target = targets[i]
    target.write_text(target.read_text(encoding="utf-8") + f"\\n\\nChanged line {i}.\\n", encoding="utf-8")
    time.sleep(0.05)

times, written = [], []
for i in range(3):  # alone: the refresh's own cost
    change(i)
    wall0 = time.time() - 0.01
    t0 = time.perf_counter()
    report = kb.refresh(dept)
    times.append(time.perf_counter() - t0)
    written.append(written_since(wall0))
    assert report.changed == 1, report
    time.sleep(1.2)  # the next refresh's "written since" window must not see this one's files

stop = threading.Event()
lat = []

def asker():  # about 10 questions a second, as a busy department might see
    i = 0
    while not stop.is_set():
        t = time.perf_counter()
        kb.retrieve(QUESTIONS[i % len(QUESTIONS)] + f" {i % 7}", scope, top_k=8)
        lat.append(time.perf_counter() - t)
        i += 1
        time.sleep(0.1)

def pct(xs, q):
    xs = sorted(xs)
    return xs[int(q * (len(xs) - 1))] * 1000 if xs else float("nan")

th = threading.Thread(target=asker, daemon=True); th.start(); time.sleep(4.0)
idle = list(lat)
during = []
for i in (3, 4):  # with questions arriving: what answers feel while the watcher refreshes
    change(i)
    lat.clear()
    kb.refresh(dept)
    during.extend(lat)
    time.sleep(1.0)
stop.set(); th.join()
times.sort(); written.sort(); scans.sort()
print(json.dumps({"seconds": times[1], "all": times, "bytes": written[1], "chunks": report.chunks,
                  "scan": scans[1], "idle_p50_ms": pct(idle, 0.5), "idle_p95_ms": pct(idle, 0.95),
                  "during_p50_ms": pct(during, 0.5), "during_p95_ms": pct(during, 0.95),
                  "during_n": len(during), "hwm_mb": status("VmHWM")}))
"""
)


def run(script: str, tree: Path, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"step failed in {tree}:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=30_000)
    ap.add_argument(
        "--memory-mb", type=float, default=None, help="knowledge.build_memory_mb (default: setting)"
    )
    ap.add_argument("--old-tree", type=Path, default=None, help="a worktree of the code before segments")
    ap.add_argument("--handbook", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args()
    handbook_files(args.handbook)  # a clear message when the corpus is missing
    copies = max(1, round(args.chunks / CHUNKS_PER_COPY))
    trees = [("segments (this tree)", REPO)]
    if args.old_tree is not None:
        trees.append(("before segments (old tree)", args.old_tree.resolve()))
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="deptbot-refresh-bench-") as tmp:
        folder = Path(tmp) / "knowledge" / "big"
        make_knowledge(folder, copies=copies, root=args.handbook)
        extra = [] if args.memory_mb is None else [str(args.memory_mb)]
        for label, tree in trees:
            state = Path(tmp) / f"state-{len(rows)}"
            build = run(BUILD, tree, str(state), str(folder), *extra)
            serve = run(SERVE, tree, str(state), str(folder))
            refresh = run(REFRESH, tree, str(state), str(folder), *extra)
            ratio = build["hwm_mb"] / serve["rss_mb"]
            rows += [
                (f"{label}: full build, {build['chunks']:.0f} chunks", f"{build['seconds']:.1f} s", ""),
                (
                    f"{label}: peak RSS of the build",
                    f"{build['hwm_mb']:.0f} MB",
                    f"{ratio:.2f}× serving RSS (target ≤ 2×); {build['before_mb']:.0f} MB before building",
                ),
                (
                    f"{label}: serving RSS (steady / peak)",
                    f"{serve['rss_mb']:.0f} MB",
                    f"peak {serve['hwm_mb']:.0f} MB",
                ),
                (
                    f"{label}: 1-file refresh (median of 3)",
                    f"{refresh['seconds']:.3f} s",
                    f"all {', '.join(f'{t:.2f}' for t in refresh['all'])} s; target < 1 s",
                ),
                (
                    f"{label}:   of which the folder scan (ingest.scan)",
                    f"{refresh['scan']:.3f} s",
                    f"index work {refresh['seconds'] - refresh['scan']:.3f} s",
                ),
                (f"{label}: bytes written by that refresh", f"{refresh['bytes'] / 2**20:.2f} MB", ""),
                (
                    f"{label}: retrieve p50/p95 at ~10 q/s, idle",
                    f"{refresh['idle_p95_ms']:.0f} ms",
                    f"p50 {refresh['idle_p50_ms']:.0f} ms",
                ),
                (
                    f"{label}: retrieve p50/p95 during 2 refreshes",
                    f"{refresh['during_p95_ms']:.0f} ms",
                    f"p50 {refresh['during_p50_ms']:.0f} ms ({refresh['during_n']:.0f} answers)",
                ),
                (f"{label}: peak RSS of the refreshing process", f"{refresh['hwm_mb']:.0f} MB", ""),
            ]
    print(f"\n{'measure':<62} {'value':>10}  detail")
    for name, value, detail in rows:
        print(f"{name:<62} {value:>10}  {detail}")


if __name__ == "__main__":
    main()
