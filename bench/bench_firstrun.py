"""The README's first command on a fresh machine (issue 15): what `uv run kitty-doctor` installs.

Each run is the README's command in this checkout with a new, empty uv cache and a new project
environment, so every wheel is downloaded from the package index and installed: the first run a
newcomer waits for. Then the same with the cache kept (a second project environment on a machine
that has run uv before), and, for scale, what the developer group the tests use would install.
The figures are wall time of the whole command (resolve, download, build kitty's own wheels,
install, run the doctor once), the distributions installed and the size of site-packages.

Needs `uv` and the package index; without either the section says so instead of a number.
Run alone with `uv run nox -s bench -- firstrun --write` (rewrites only this section).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "uv run --locked kitty-doctor"


def _uv() -> str | None:
    # `uv run` names itself in $UV; otherwise whatever uv is on PATH.
    return os.environ.get("UV") or shutil.which("uv")


def _site_packages(venv: Path) -> Path:
    posix = sorted(venv.glob("lib/python3*/site-packages"))
    return posix[0] if posix else venv / "Lib" / "site-packages"


def _size_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def _one(uv: str, cache: Path, venv: Path, *extra: str) -> tuple[float, int, float, str]:
    """(seconds, distributions, site-packages MB, error) of one `uv run ... kitty-doctor`."""
    env = dict(
        os.environ,
        UV_CACHE_DIR=str(cache),
        UV_PROJECT_ENVIRONMENT=str(venv),
        UV_PYTHON_DOWNLOADS="never",
        NO_COLOR="1",
        KITTY_HOME=str(venv.parent / "home"),
    )
    for name in ("VIRTUAL_ENV", "UV_NO_SYNC", "UV_OFFLINE"):
        env.pop(name, None)
    argv = [uv, "run", "--locked", "--python", sys.executable, *extra, "kitty-doctor"]
    start = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900
    )
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # the doctor exits 1 on a fresh machine (not logged in)
        return seconds, 0, 0.0, (proc.stderr.strip().splitlines() or ["no output"])[-1]
    site = _site_packages(venv)
    return seconds, len(list(site.glob("*.dist-info"))), _size_mb(site), ""


def run(quick: bool) -> str:
    runs = 1 if quick else 3
    heading = "## First run of the README's command (issue 15)"
    uv = _uv()
    if uv is None:
        return f"{heading}\n\nNot measured: `uv` is not on PATH."
    tmp = Path(tempfile.mkdtemp(prefix="kitty-bench-firstrun-"))
    try:
        clean = [_one(uv, tmp / f"cache-{i}", tmp / f"clean-{i}" / "venv") for i in range(runs)]
        warm = [_one(uv, tmp / "cache-0", tmp / f"warm-{i}" / "venv") for i in range(runs)]
        dev = _one(uv, tmp / "cache-0", tmp / "dev" / "venv", "--group", "dev")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = [err for _, _, _, err in [*clean, *warm, dev] if err]
    if failed:
        return f"{heading}\n\nNot measured: `{COMMAND}` failed: {failed[0]}"

    def secs(results: list[tuple[float, int, float, str]]) -> str:
        times = [t for t, _, _, _ in results]
        return f"{statistics.median(times):.1f} s (min {min(times):.1f} s)"

    _, count, size, _ = clean[0]
    lines = [
        heading,
        "",
        f"`{COMMAND}` in this checkout, each run with a new project environment, {runs} runs"
        " each (wall time of the whole command: resolve, download, build kitty's wheels,"
        " install, run the doctor):",
        "",
        "| uv cache | p50 (min) | distributions installed | site-packages |",
        "|---|---|---|---|",
        f"| new and empty (every wheel downloaded) | {secs(clean)} | {count} | {size:.0f} MB |",
        f"| kept from an earlier run | {secs(warm)} | {warm[0][1]} | {warm[0][2]:.0f} MB |",
        "",
        f"For scale, the dev group the tests install (`--group dev`, cache kept): {dev[1]}"
        f" distributions, {dev[2]:.0f} MB, {dev[0]:.1f} s. The first command installs the runtime"
        " only because the workspace root sets uv's `default-groups = []`; `cryptography` (15 MB,"
        " for `private_key_jwt` alone) is kitty-auth-refresh's `private-key-jwt` extra.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
