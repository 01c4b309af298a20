"""kitty-filelock benchmark (NFR-02): kitty vs filelock vs portalocker vs two raw floors.

Measured in one run on one machine:
- uncontended acquire+release latency (p50/p95/p99) for kitty, filelock, portalocker, the bare
  `fcntl.flock` floor (open+flock+unlock+close) and the physical floor of kitty's design (the
  same plus truncate + write of the same record bytes + truncate);
- contended throughput with 2/4/8 processes incrementing a shared counter for a fixed time,
  with an exactness check (counter == sum of per-process counts) and fairness (max/min share);
- release->acquire handoff latency between two processes with a short (2 ms) hold;
- crash handoff: SIGKILL the holder while a waiter has been backing off for a while.

Run: `uv run nox -s bench` (all areas, writes docs/benchmarks.md) or
`.venv/bin/python bench/run.py [--quick] lock`. Benchmarks measure; they never assert.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import percentile

from kitty_filelock import MachineFileLock, detect_filesystem

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: raw floors are POSIX-only
    fcntl = None  # type: ignore[assignment]

try:
    import filelock
except ImportError:  # pragma: no cover - the bench group installs it
    filelock = None  # type: ignore[assignment]

try:
    import portalocker
except ImportError:  # pragma: no cover - the bench group installs it
    portalocker = None  # type: ignore[assignment]

HOLD_S = 0.002  # the "short critical section" of the handoff benchmark
POLL_S = 0.05  # kitty's default poll_interval (the crash-handoff target is poll + 50 ms)

# ---------------------------------------------------------------- helpers


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


# ---------------------------------------------------------------- uncontended


def _uncontended_impls(path: str) -> dict[str, Callable[[], None]]:
    impls: dict[str, Callable[[], None]] = {}
    kitty = MachineFileLock(path, label="bench")
    kitty.acquire()
    record = Path(path).read_bytes()  # the exact bytes kitty writes, for the physical floor
    kitty.release()

    def kitty_cycle() -> None:
        kitty.acquire()
        kitty.release()

    impls["kitty-filelock"] = kitty_cycle

    def kitty_fresh_cycle() -> None:  # one MachineFileLock per use: kitty's own packages
        lock = MachineFileLock(path, label="bench")
        lock.acquire()
        lock.release()

    impls["kitty-filelock (new object per use)"] = kitty_fresh_cycle
    if fcntl is not None:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        raw_path = path + ".raw"

        def raw_floor() -> None:
            fd = os.open(raw_path, flags, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        def physical_floor() -> None:
            fd = os.open(raw_path, flags, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        def kitty_syscalls() -> None:
            # Exactly the system calls of kitty's uncontended cycle, nothing else: open, lock,
            # fstat (unsafe-file refusal, empty-file check), lstat (the path still names the
            # locked inode), the record, then truncate, unlock, close on release.
            fd = os.open(raw_path, flags, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fstat(fd)
            os.lstat(raw_path)
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        impls["raw flock floor"] = raw_floor
        impls["physical floor"] = physical_floor
        impls["kitty's system calls alone"] = kitty_syscalls
    if filelock is not None:
        peer = filelock.FileLock(path + ".filelock", timeout=5)

        def filelock_cycle() -> None:
            peer.acquire()
            peer.release()

        impls["filelock"] = filelock_cycle
    if portalocker is not None:
        pl_path = path + ".portalocker"

        def portalocker_cycle() -> None:
            lock = portalocker.Lock(pl_path, timeout=5)
            lock.acquire()
            lock.release()

        impls["portalocker"] = portalocker_cycle
    return impls


def _uncontended(iterations: int, work: Path) -> dict[str, list[float]]:
    impls = _uncontended_impls(str(work / "uncontended.lock"))
    samples: dict[str, list[float]] = {name: [] for name in impls}
    clock = time.perf_counter
    rounds = 10
    per_round = max(1, iterations // rounds)
    for cycle in impls.values():  # warm-up: first-use costs are not the steady state
        for _ in range(200):
            cycle()
    # Interleave implementations in rounds so machine noise spreads evenly over all of them.
    for _ in range(rounds):
        for name, cycle in impls.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                cycle()
                bucket.append(clock() - start)
    return samples


# ---------------------------------------------------------------- contended throughput

CONTENDED_WORKER = r"""
import os, sys, time
impl, lock_path, counter_path, duration = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
if impl == "kitty-filelock":
    from kitty_filelock import MachineFileLock
    lock = MachineFileLock(lock_path, acquire_timeout=60)
    enter, leave = lock.acquire, lock.release
elif impl == "filelock":
    import filelock
    lock = filelock.FileLock(lock_path, timeout=60)
    enter, leave = lock.acquire, lock.release
else:
    import portalocker
    def enter():
        global current
        current = portalocker.Lock(lock_path, timeout=60)
        current.acquire()
    def leave():
        current.release()
print("ready", flush=True)
sys.stdin.readline()
deadline = time.monotonic() + duration
count = 0
while time.monotonic() < deadline:
    enter()
    try:
        with open(counter_path, "r+") as fh:
            value = int(fh.read() or "0")
            fh.seek(0)
            fh.write(str(value + 1))
            fh.truncate()
    finally:
        leave()
    count += 1
print(count, flush=True)
"""


@contextlib.contextmanager
def _children() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def _spawn(procs: list[subprocess.Popen[str]], code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


def _contended(impl: str, n_procs: int, duration: float, work: Path) -> tuple[float, bool, float]:
    """(acquisitions per second, exact, max/min share) for n_procs fighting for duration s."""
    lock_path = work / f"contended-{impl}-{n_procs}.lock"
    counter_path = work / f"contended-{impl}-{n_procs}.txt"
    counter_path.write_text("0")
    with _children() as procs:
        for _ in range(n_procs):
            _spawn(procs, CONTENDED_WORKER, impl, str(lock_path), str(counter_path), str(duration))
        for proc in procs:
            assert proc.stdout is not None
            proc.stdout.readline()
        started = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        counts = []
        for proc in procs:
            assert proc.stdout is not None
            counts.append(int(proc.stdout.readline()))
        elapsed = time.monotonic() - started
    total = sum(counts)
    exact = int(counter_path.read_text()) == total
    fairness = max(counts) / max(1, min(counts))
    return total / elapsed, exact, fairness


# ---------------------------------------------------------------- fairness

FAIR_HOLD_S = 0.001
FAIR_WORKER = r"""
import json, sys, time
impl, lock_path, duration, hold = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
if impl == "kitty-filelock":
    from kitty_filelock import MachineFileLock
    lock = MachineFileLock(lock_path, acquire_timeout=60)
    enter, leave = lock.acquire, lock.release
elif impl == "filelock":
    import filelock
    lock = filelock.FileLock(lock_path, timeout=60)
    enter, leave = lock.acquire, lock.release
else:
    import portalocker
    def enter():
        global current
        current = portalocker.Lock(lock_path, timeout=60)
        current.acquire()
    def leave():
        current.release()
print("ready", flush=True)
sys.stdin.readline()
deadline = time.monotonic() + duration
waits = []
while time.monotonic() < deadline:
    asked = time.monotonic()
    enter()
    waits.append(time.monotonic() - asked)
    spin = time.monotonic() + hold  # the critical section, then straight back for more
    while time.monotonic() < spin:
        pass
    leave()
print(json.dumps(waits), flush=True)
"""


def _fairness(
    impl: str, n_procs: int, duration: float, work: Path
) -> tuple[list[int], list[float]]:
    """(acquisitions per process, every wait) for n_procs looping acquire → 1 ms → release."""
    lock_path = str(work / f"fair-{impl}-{n_procs}.lock")
    with _children() as procs:
        for _ in range(n_procs):
            _spawn(procs, FAIR_WORKER, impl, lock_path, str(duration), str(FAIR_HOLD_S))
        for proc in procs:
            assert proc.stdout is not None
            proc.stdout.readline()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        per_process: list[list[float]] = []
        for proc in procs:
            assert proc.stdout is not None
            per_process.append(json.loads(proc.stdout.readline()))
    return [len(w) for w in per_process], [x for w in per_process for x in w]


# ---------------------------------------------------------------- handoff latency

HANDOFF_WORKER = r"""
import sys, time
impl, lock_path = sys.argv[1], sys.argv[2]
if impl == "kitty-filelock":
    from kitty_filelock import MachineFileLock
    lock = MachineFileLock(lock_path, acquire_timeout=60)
    enter, leave = lock.acquire, lock.release
elif impl == "filelock":
    import filelock
    lock = filelock.FileLock(lock_path, timeout=60)
    enter, leave = lock.acquire, lock.release
else:
    import portalocker
    def enter():
        global current
        current = portalocker.Lock(lock_path, timeout=60)
        current.acquire()
    def leave():
        current.release()
for cmd in sys.stdin:
    if cmd.strip() != "go":
        break
    print("trying", flush=True)
    enter()
    acquired = time.monotonic_ns()
    leave()
    print(acquired, flush=True)
"""


def _parent_lock(impl: str, path: str) -> tuple[Callable[[], object], Callable[[], None]]:
    if impl == "kitty-filelock":
        lock = MachineFileLock(path, acquire_timeout=60)
        return lock.acquire, lock.release
    if impl == "filelock":
        peer = filelock.FileLock(path, timeout=60)
        return peer.acquire, peer.release
    holder: list[portalocker.Lock] = []

    def enter() -> None:
        holder.append(portalocker.Lock(path, timeout=60))
        holder[-1].acquire()

    def leave() -> None:
        holder.pop().release()

    return enter, leave


def _handoff(impl: str, iterations: int, work: Path) -> list[float]:
    """Release in this process -> acquired in the child, in seconds, after a 2 ms hold."""
    lock_path = str(work / f"handoff-{impl}.lock")
    enter, leave = _parent_lock(impl, lock_path)
    latencies: list[float] = []
    with _children() as procs:
        child = _spawn(procs, HANDOFF_WORKER, impl, lock_path)
        assert child.stdin is not None
        assert child.stdout is not None
        for _ in range(iterations):
            enter()
            child.stdin.write("go\n")
            child.stdin.flush()
            child.stdout.readline()  # "trying": the child is about to contend
            time.sleep(HOLD_S)  # the short critical section
            released = time.monotonic_ns()
            leave()
            acquired = int(child.stdout.readline())
            latencies.append((acquired - released) / 1e9)
        child.stdin.write("stop\n")
        child.stdin.flush()
    return latencies


# ---------------------------------------------------------------- crash handoff

CRASH_HOLDER = r"""
import sys
impl, lock_path = sys.argv[1], sys.argv[2]
if impl == "kitty-filelock":
    from kitty_filelock import MachineFileLock
    lock = MachineFileLock(lock_path)
    lock.acquire()
elif impl == "filelock":
    import filelock
    lock = filelock.FileLock(lock_path)  # keep a reference: its __del__ would release
    lock.acquire()
else:
    import portalocker
    lock = portalocker.Lock(lock_path, timeout=60)
    lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def _crash(impl: str, iterations: int, work: Path) -> list[float]:
    """SIGKILL a holder while this process has been waiting 0.3 s; time until we hold it."""
    latencies: list[float] = []
    lock_path = str(work / f"crash-{impl}.lock")
    for _ in range(iterations):
        with _children() as procs:
            holder = _spawn(procs, CRASH_HOLDER, impl, lock_path)
            assert holder.stdout is not None
            holder.stdout.readline()
            enter, leave = _parent_lock(impl, lock_path)
            got: list[int] = []

            def waiter(
                enter: Callable[[], object] = enter,
                leave: Callable[[], None] = leave,
                got: list[int] = got,
            ) -> None:
                enter()
                got.append(time.monotonic_ns())
                leave()  # same thread: filelock's lock state is thread-local

            thread = threading.Thread(target=waiter)
            thread.start()
            time.sleep(0.3)  # let the waiter's backoff reach its ceiling (the slow case)
            killed = time.monotonic_ns()
            holder.send_signal(signal.SIGKILL)
            thread.join(timeout=60)
            latencies.append((got[0] - killed) / 1e9)
    return latencies


# ---------------------------------------------------------------- report


def run(quick: bool) -> str:
    iterations = 2_000 if quick else 20_000
    duration = 0.3 if quick else 1.0
    handoffs = {"kitty-filelock": 30 if quick else 300, "filelock": 10 if quick else 60}
    handoffs["portalocker"] = 5 if quick else 20
    crashes = {"kitty-filelock": 3 if quick else 10, "filelock": 2 if quick else 5}
    crashes["portalocker"] = 2 if quick else 5
    peers = [p for p, mod in (("filelock", filelock), ("portalocker", portalocker)) if mod]
    impls = ["kitty-filelock", *peers]

    with tempfile.TemporaryDirectory(prefix="kitty-bench-lock-") as tmp:
        work = Path(tmp)
        fs_type = detect_filesystem(tmp).fs_type
        uncontended = _uncontended(iterations, work)
        contended = {
            (impl, n): _contended(impl, n, duration, work) for impl in impls for n in (2, 4, 8)
        }
        fair_s = 1.0 if quick else 5.0
        fairness = {(impl, n): _fairness(impl, n, fair_s, work) for n in (4, 8) for impl in impls}
        handoff = {impl: _handoff(impl, handoffs[impl], work) for impl in impls}
        crash = {impl: _crash(impl, crashes[impl], work) for impl in impls} if fcntl else {}

    command = ".venv/bin/python bench/run.py --quick lock" if quick else "uv run nox -s bench"
    out = [
        "## Lock: kitty-filelock (NFR-02)",
        "",
        f"Command: `{command}` ({'quick' if quick else 'full'} run: {iterations:,} uncontended "
        f"iterations per implementation, {duration:g} s per contended cell). Lock files in a"
        f" temporary directory on {fs_type}; every row of a table comes from the same run,"
        " interleaved in rounds.",
        "",
        "### Uncontended acquire + release",
        "",
        "| implementation | p50 | p95 | p99 | p50 vs physical floor |",
        "|---|---:|---:|---:|---:|",
    ]
    floor = (
        percentile(uncontended["physical floor"], 0.5) if "physical floor" in uncontended else None
    )
    for name, xs in uncontended.items():
        ratio = f"{percentile(xs, 0.5) / floor:.2f}x" if floor else "—"
        out.append(
            f"| {name} | {_us(percentile(xs, 0.5))} | {_us(percentile(xs, 0.95))} | "
            f"{_us(percentile(xs, 0.99))} | {ratio} |"
        )
    out += [
        "",
        "### Contended: N processes incrementing one counter file under the lock",
        "",
        "| implementation | processes | acquisitions/s | exact | fairness (max/min share) |",
        "|---|---:|---:|:---:|---:|",
    ]
    for (impl, n), (rate, exact, spread) in contended.items():
        out.append(
            f"| {impl} | {n} | {rate:,.0f} | {'yes' if exact else '**NO**'} | {spread:.2f} |"
        )
    out += [
        "",
        f"### Fairness: N processes looping acquire → {FAIR_HOLD_S * 1e3:g} ms → release for"
        f" {fair_s:g} s",
        "",
        "| implementation | processes | acquisitions | min share | max share | p99 wait |"
        " worst wait |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (impl, n), (counts, waits) in fairness.items():
        total = max(1, sum(counts))
        out.append(
            f"| {impl} | {n} | {sum(counts):,} | {min(counts) / total:.1%} |"
            f" {max(counts) / total:.1%} | {_ms(percentile(waits, 0.99))} | {_ms(max(waits))} |"
        )
    out += [
        "",
        f"### Handoff: release in one process → acquired in another ({HOLD_S * 1e3:g} ms hold)",
        "",
        "| implementation | samples | p50 | p95 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for impl, xs in handoff.items():
        p50, p95 = _ms(percentile(xs, 0.5)), _ms(percentile(xs, 0.95))
        out.append(f"| {impl} | {len(xs)} | {p50} | {p95} | {_ms(max(xs))} |")
    if crash:
        out += [
            "",
            "### Crash handoff: SIGKILL the holder while a waiter has backed off for 0.3 s",
            "",
            "| implementation | samples | p50 | max |",
            "|---|---:|---:|---:|",
        ]
        for impl, xs in crash.items():
            out.append(f"| {impl} | {len(xs)} | {_ms(percentile(xs, 0.5))} | {_ms(max(xs))} |")

    kitty = uncontended["kitty-filelock"]
    k50, k95 = percentile(kitty, 0.5), percentile(kitty, 0.95)
    targets = ["", "### Targets", ""]
    if floor:
        targets.append(
            f"- kitty p50 ≤ 1.5 x physical floor: {_us(k50)} vs {_us(1.5 * floor)} → "
            f"{_verdict(k50 <= 1.5 * floor)} ({k50 / floor:.2f}x)"
        )
    targets.append(f"- kitty p95 ≤ 2 ms: {_us(k95)} → {_verdict(k95 <= 0.002)}")
    for peer in peers:
        peer50 = percentile(uncontended[peer], 0.5)
        targets.append(f"- kitty p50 below {peer} p50 ({_us(peer50)}) → {_verdict(k50 < peer50)}")
    fresh50 = percentile(uncontended["kitty-filelock (new object per use)"], 0.5)
    if floor:
        targets.append(
            f"- kitty p50 with a new object per use ≤ 1.5 x physical floor: {_us(fresh50)} →"
            f" {_verdict(fresh50 <= 1.5 * floor)} ({fresh50 / floor:.2f}x)"
        )
    h50 = percentile(handoff["kitty-filelock"], 0.5)
    targets.append(f"- handoff p50 ≤ 1 ms: {_ms(h50)} → {_verdict(h50 <= 0.001)}")
    for n, share in ((4, 0.20), (8, 0.10)):
        counts, waits = fairness[("kitty-filelock", n)]
        low = min(counts) / max(1, sum(counts))
        worst_wait = max(waits)
        targets.append(
            f"- {n} processes: every share ≥ {share:.0%} ({low:.1%}) → {_verdict(low >= share)};"
            f" worst wait ≤ 250 ms ({_ms(worst_wait)}) → {_verdict(worst_wait <= 0.25)}"
        )
        if ("filelock", n) in fairness:
            theirs = sum(fairness[("filelock", n)][0])
            targets.append(
                f"- {n} processes: acquisitions ≥ filelock's ({sum(counts):,} vs {theirs:,}) →"
                f" {_verdict(sum(counts) >= theirs)}"
            )
    if crash:
        worst = max(crash["kitty-filelock"])
        targets.append(
            f"- crash handoff ≤ poll_interval + 50 ms ({_ms(POLL_S + 0.05)}): worst {_ms(worst)}"
            f" → {_verdict(worst <= POLL_S + 0.05)}"
        )
    exact_all = all(exact for _, exact, _ in contended.values())
    targets.append(f"- contended counters exact for every cell → {_verdict(exact_all)}")
    if floor and "kitty's system calls alone" in uncontended:
        calls = percentile(uncontended["kitty's system calls alone"], 0.5)
        targets += [
            "",
            f"Where the uncontended time goes: kitty's system calls alone take {_us(calls)}",
            f"({calls / floor:.2f}x the floor: the fstat and lstat that refuse unsafe files and",
            "re-check the locked inode cost more than the truncate they save); the other",
            f"{_us(max(0.0, k50 - calls))} is the Python around them (ownership per thread and",
            "task, the in-process gate and registry, the fairness check, the record stamp).",
            "A ratio target above the system calls' own is missed by that Python, not by an",
            "extra system call. A new object per use adds its construction and first-acquisition",
            f"setup (argument checks, path normalisation, cached filesystem and record-template"
            f" lookups): {_us(max(0.0, fresh50 - k50))} more at p50.",
        ]
    targets += [
        "",
        "Notes: kitty's waiters announce themselves and poll every 0.5 ms for their first 2 s",
        "(a releaser that keeps re-taking the lock yields to them after a 10 ms streak); otherwise",
        "backoff is adaptive (first retry after ~1 ms, doubling to `poll_interval`, ±20 %",
        "jitter); fixed-interval peers poll every 50 ms",
        "(filelock) or 250 ms (portalocker). Crash handoff for a waiter that has backed off to",
        "its ceiling is at most one `poll_interval` plus process teardown. With more processes",
        f"than cores ({os.cpu_count()} here), a worst wait also holds the scheduler's share: a",
        "waiter that is off the CPU when the lock is handed over waits for its next slice, so",
        "the 8-process worst wait varies from run to run (the shares stay even).",
    ]
    return "\n".join(out + targets)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
