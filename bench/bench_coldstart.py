"""kitty-doctor cold start (issue 15): `kitty-doctor --json` against a bare interpreter start.

A newcomer's first command on a machine where nothing listens: `kitty-doctor --json` on a fresh
home, default families, each run a new interpreter with bytecode caches (as after the first run
of an installed package). It is timed against `python -c pass`, interleaved run by run so machine
load hits both alike. Target: median doctor <= 6x median bare. Then `python -X importtime` of the
same command says what was imported and where the time went. Nothing is started here but those
processes.

Run alone with `uv run nox -s bench -- coldstart --write` (rewrites only this section).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import doctor_argv, percentile

MAX_RATIO = 6.0
#: Shifted ranges of the default sizes (sync 50 ports, dashboard 100) in a block no test suite
#: or other benchmark binds, so "nothing listening" holds while they run.
SYNC_PORTS = "21000-21050"
DASHBOARD_PORTS = "21050-21150"
#: What a default `--json` run must not need: dataclasses and inspect (value classes are made by
#: kitty-filelock's frozen_dataclass), hashlib (nothing to hash when nothing listens), traceback
#: (nothing failed), string (no app re-worded a finding), the CLI framework and the human
#: renderer, psutil (no process to look at), asyncio, importlib.metadata, the daemon's HTTP
#: server, httpx.
NOT_NEEDED = (
    "dataclasses",
    "inspect",
    "hashlib",
    "traceback",
    "string",
    "typer",
    "click",
    "rich",
    "psutil",
    "asyncio",
    "importlib.metadata",
    "http.server",
    "httpx",
)
IMPORTTIME_RUNS = 5
TOP = 12
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def _wall_ms(argv: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False, timeout=120)
    return (time.perf_counter() - start) * 1000.0


def _interleaved(
    argvs: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, list[float]]:
    for argv in argvs.values():  # warm the page and bytecode caches
        subprocess.run(argv, env=env, capture_output=True, check=False, timeout=120)
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(runs):
        for name, argv in argvs.items():
            times[name].append(_wall_ms(argv, env))
    return times


def _importtime(env: dict[str, str]) -> tuple[dict[str, tuple[float, float]], set[str], int]:
    """Per module imported, the median over IMPORTTIME_RUNS runs of (self ms, cumulative ms);
    the modules imported at top level (not by another module); and how many listeners the
    report saw (0, or the numbers do not describe a fresh machine)."""
    samples: dict[str, list[tuple[float, float]]] = {}
    top_level: set[str] = set()
    listeners = 0
    for _ in range(IMPORTTIME_RUNS):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "kitty_doctor", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        doc = json.loads(proc.stdout)
        listeners = max(listeners, sum(len(v) for v in (doc.get("orphans") or {}).values()))
        for line in proc.stderr.splitlines():
            match = _LINE.match(line)
            if match:
                name = match.group(4)
                samples.setdefault(name, []).append(
                    (int(match.group(1)) / 1000.0, int(match.group(2)) / 1000.0)
                )
                if not match.group(3):
                    top_level.add(name)
    medians = {
        name: (statistics.median(s for s, _ in v), statistics.median(c for _, c in v))
        for name, v in samples.items()
    }
    return medians, top_level, listeners


#: The default command in-process, timing every value-class creation on the way (by wrapping
#: kitty-filelock's `frozen_dataclass` before any kitty module takes it: a benchmark may, code may
#: not), then counting the value classes and enums kitty's modules defined, and timing what the
#: same classes cost the stdlib's `dataclasses` (each generated method compiled, as the classes
#: were made until issue 15; `dataclasses.fields` makes that twin on first access).
_CLASS_COST = """
import time
started = time.perf_counter()
import contextlib, enum, io, json, sys
import kitty_filelock._frozen as frozen
spent = 0.0
make = frozen.frozen_dataclass
def timed(cls):
    global spent
    t = time.perf_counter()
    try:
        return make(cls)
    finally:
        spent += time.perf_counter() - t
frozen.frozen_dataclass = timed
from kitty_doctor._run import main_with_args
with contextlib.redirect_stdout(io.StringIO()):
    main_with_args(["--json"])
total = time.perf_counter() - started
loaded = "dataclasses" in sys.modules
import dataclasses
kinds = {"value_classes": 0, "enums": 0}
as_dataclasses = 0.0
for name, module in list(sys.modules.items()):
    if not name.startswith("kitty_"):
        continue
    for value in vars(module).values():
        if isinstance(value, type) and value.__module__ == name:
            if hasattr(value, "__frozen_fields__"):
                kinds["value_classes"] += 1
                t = time.perf_counter()
                dataclasses.fields(value)
                as_dataclasses += time.perf_counter() - t
            elif issubclass(value, enum.Enum):
                kinds["enums"] += 1
print(json.dumps({**kinds, "class_ms": spent * 1000, "as_dataclasses_ms": as_dataclasses * 1000,
                  "in_process_ms": total * 1000, "dataclasses_loaded": loaded}))
"""


def _class_cost(env: dict[str, str]) -> dict[str, float]:
    """Median over IMPORTTIME_RUNS runs of `_CLASS_COST`'s figures."""
    runs: list[dict[str, float]] = []
    for _ in range(IMPORTTIME_RUNS):
        proc = subprocess.run(
            [sys.executable, "-c", _CLASS_COST],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        runs.append(json.loads(proc.stdout))
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def _group(module: str) -> str:
    root = module.split(".")[0]
    if root.startswith("kitty_"):
        return root
    if root in sys.stdlib_module_names or root.startswith("_") or root == "encodings":
        return "stdlib"
    return "third-party"


def run(quick: bool) -> str:
    runs = 5 if quick else 21
    tmp = Path(tempfile.mkdtemp(prefix="kitty-bench-coldstart-"))
    env = dict(
        os.environ,
        KITTY_HOME=str(tmp / "fresh-home"),
        KITTY_SYNC_PORTS=SYNC_PORTS,
        KITTY_DASHBOARD_PORTS=DASHBOARD_PORTS,
        NO_COLOR="1",
        # Bytecode caches in a private prefix (nothing written into the tree), filled by the
        # warm-up runs: a cold interpreter as after the first run of an installed package.
        PYTHONPYCACHEPREFIX=str(tmp / "pycache"),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    doctor = [*doctor_argv(), "--json"]
    try:
        times = _interleaved(
            {
                "bare": [sys.executable, "-c", "pass"],
                "doctor": doctor,
            },
            env,
            runs,
        )
        modules, top_level, listeners = _importtime(env)
        classes = _class_cost(env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    bare, cold = times["bare"], times["doctor"]
    bare_med, cold_med = statistics.median(bare), statistics.median(cold)
    ratio = cold_med / bare_med
    verdict = "met" if ratio <= MAX_RATIO else "NOT met"
    loaded = [name for name in NOT_NEEDED if name in modules]
    total_self = sum(s for s, _ in modules.values())
    by_group: dict[str, float] = {}
    for name, (self_ms, _) in modules.items():
        by_group[_group(name)] = by_group.get(_group(name), 0.0) + self_ms
    heaviest = sorted(modules.items(), key=lambda kv: -kv[1][0])[:TOP]
    top_imports = sorted(
        ((n, c) for n, (_, c) in modules.items() if n in top_level), key=lambda kv: -kv[1]
    )[:TOP]

    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name} | {statistics.median(values):.0f} | {percentile(values, 0.95):.0f} |"
            f" {min(values):.0f} |"
        )

    lines = [
        "## kitty-doctor cold start (issue 15)",
        "",
        f"- measured: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')},"
        f" {platform.system()} {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}; 1-minute load average at the end: {load:.1f}",
        "- command: `uv run nox -s bench -- coldstart --write` (this section alone)",
        "",
        f"`kitty-doctor --json` on a fresh home (default families, ranges"
        f" shifted to sync {SYNC_PORTS} and dashboard {DASHBOARD_PORTS}, listeners seen:"
        f" {listeners}), each run a new interpreter with bytecode caches, wall time, interleaved"
        f" with a bare interpreter start, {runs} runs each:",
        "",
        "| command | p50 ms | p95 ms | min ms |",
        "|---|---|---|---|",
        row(f"`{Path(sys.executable).name} -c pass` (bare interpreter)", bare),
        row("`kitty-doctor --json`", cold),
        "",
        f"- ratio of medians, doctor / bare: **{ratio:.1f}x**; target ≤ {MAX_RATIO:.0f}x:"
        f" **{verdict}**.",
        "- imported by the run, of "
        + ", ".join(NOT_NEEDED)
        + ": "
        + (", ".join(loaded) if loaded else "none")
        + ".",
        "",
        f"Where the import time goes (`python -X importtime -m kitty_doctor --json`, median of"
        f" {IMPORTTIME_RUNS} runs; importtime's own bookkeeping inflates every figure a little):"
        f" {len(modules)} modules, {total_self:.0f} ms of module bodies, of which "
        + ", ".join(
            f"{name} {ms:.0f} ms" for name, ms in sorted(by_group.items(), key=lambda kv: -kv[1])
        )
        + f". kitty's module bodies define {classes['value_classes']:.0f} frozen value classes"
        f" and {classes['enums']:.0f} enums on this path; `frozen_dataclass` makes the classes in"
        f" {classes['class_ms']:.1f} ms of the {classes['in_process_ms']:.0f} ms the run takes"
        " in-process (after interpreter start-up; median of the same number of runs), where the"
        f" stdlib's `dataclasses` takes {classes['as_dataclasses_ms']:.0f} ms for the same classes"
        " (before loading `dataclasses` itself)"
        + ("; `dataclasses` was loaded on the way." if classes["dataclasses_loaded"] else ".")
        + " What remains is mostly the stdlib modules the run needs (pathlib, socket, json, enum,"
        " datetime) and the checks themselves.",
        "",
        "| top-level import | cumulative ms |",
        "|---|---|",
        *[f"| {name} | {ms:.1f} |" for name, ms in top_imports],
        "",
        "| module body | self ms |",
        "|---|---|",
        *[f"| {name} | {self_ms:.1f} |" for name, (self_ms, _) in heaviest],
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
