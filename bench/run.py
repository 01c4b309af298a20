"""Run every benchmark module and rewrite docs/benchmarks.md.

Each `bench/bench_<area>.py` exposes `run(quick: bool) -> str`, returning one Markdown section
(heading, table, notes on targets). Benchmarks measure; they never assert. Usage:

    uv run nox -s bench                 # all areas, full iteration counts
    uv run nox -s bench -- --quick      # fewer iterations (smoke check of the harness)
    uv run nox -s bench -- lock auth    # only some areas
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import pathlib
import platform
import sys

HERE = pathlib.Path(__file__).parent
DOC = HERE.parent / "docs" / "benchmarks.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", help="bench_<area>.py modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations; do not write docs")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))  # for the shared bench/_common.py
    modules = sorted(HERE.glob("bench_*.py"))
    if args.areas:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in args.areas]
    sections: list[str] = []
    for path in modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        print(f"== {path.stem} ==", flush=True)
        section = module.run(args.quick)
        print(section, flush=True)
        sections.append(section)

    if args.quick or args.areas:
        # Partial runs print only: the document always reflects one complete, full run.
        return 0
    header = (
        "# Benchmarks\n\n"
        "Produced by `uv run nox -s bench` (which runs `python bench/run.py`); every number below\n"
        "comes from one run on one machine. Benchmarks measure; tests never assert wall times.\n\n"
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n\n"
    )
    DOC.write_text(header + "\n\n".join(sections) + "\n")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
