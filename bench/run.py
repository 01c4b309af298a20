"""Run every benchmark module and rewrite docs/benchmarks.md.

Each `bench/bench_<area>.py` exposes `run(quick: bool) -> str`, returning one Markdown section
(heading, table, notes on targets). Benchmarks measure; they never assert. Usage:

    uv run nox -s bench                 # all areas, full iteration counts
    uv run nox -s bench -- --quick      # fewer iterations (smoke check of the harness)
    uv run nox -s bench -- lock auth    # only some areas (printed, the document untouched)
    uv run nox -s bench -- coldstart --write   # one area, rewriting only its section

In the document each area's section follows a `<!-- bench:AREA -->` line, so that one area can
be measured again without re-running the others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import pathlib
import platform
import re
import sys

HERE = pathlib.Path(__file__).parent
DOC = HERE.parent / "docs" / "benchmarks.md"
_MARKER = re.compile(r"^<!-- bench:(\w+) -->\n", re.M)


def _marked(area: str, section: str) -> str:
    return f"<!-- bench:{area} -->\n{section.rstrip()}\n"


def _stamped(area: str, section: str) -> str:
    """`section` saying when and how it was measured, under its heading (unless it says so)."""
    if "- measured:" in section:
        return section
    heading, _, rest = section.partition("\n")
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    stamp = (
        f"- measured: {when}, {platform.system()} {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}\n"
        f"- command: `uv run nox -s bench -- {area} --write` (this section alone)\n"
    )
    return f"{heading}\n\n{stamp}{rest}"


def _rewrite(sections: dict[str, str]) -> None:
    """Replace (or add, in area order) the sections of `sections` in the existing document,
    each stamped with when it was measured (the header's date is the last full run's)."""
    text = DOC.read_text()
    starts = list(_MARKER.finditer(text))
    if not starts:
        raise SystemExit(f"{DOC} has no section markers: run every area once (no --write)")
    header = text[: starts[0].start()]
    blocks = {
        m.group(1): text[m.start() : nxt.start() if nxt else len(text)].rstrip() + "\n"
        for m, nxt in zip(starts, [*starts[1:], None], strict=True)
    }
    blocks.update({area: _marked(area, _stamped(area, text)) for area, text in sections.items()})
    DOC.write_text(header + "\n".join(blocks[area] for area in sorted(blocks)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", help="bench_<area>.py modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations; do not write docs")
    parser.add_argument(
        "--write", action="store_true", help="with areas: rewrite only their sections of the doc"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))  # for the shared bench/_common.py
    modules = sorted(HERE.glob("bench_*.py"))
    if args.areas:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in args.areas]
    sections: dict[str, str] = {}
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
        sections[path.stem.removeprefix("bench_")] = section

    if args.quick:
        return 0
    if args.areas:
        # A partial run prints only, unless told to replace just its own sections.
        if args.write:
            _rewrite(sections)
            print(f"rewrote {', '.join(sections)} in {DOC}")
        return 0
    header = (
        "# Benchmarks\n\n"
        "Produced by `uv run nox -s bench` (which runs `python bench/run.py`); the numbers of a\n"
        "section come from one run on one machine, the one below unless the section names its own\n"
        "(`uv run nox -s bench -- AREA --write` measures one area again). Benchmarks measure;\n"
        "tests never assert wall times.\n\n"
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n\n"
    )
    DOC.write_text(header + "\n".join(_marked(area, text) for area, text in sections.items()))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
