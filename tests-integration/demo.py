"""The newcomer's tour (INT-09): `nox -s demo` (or `python tests-integration/demo.py`).

Builds a throw-away kitty home that looks like a developer machine after a few upgrades and
checkouts, then shows what kitty makes of it:

1. the scene: a logged-in session (against the local test OAuth server), the app's daemon
   started through `ensure_daemon`, three stale daemons of older versions (3.2.2/3.2.3/3.2.4), a
   daemon of another checkout (cross-home), a wedged daemon, a third-party web app squatting in
   the range and a dashboard daemon;
2. `kitty-doctor` — the diagnosis;
3. `kitty-doctor --reset` — the safe clean-up (what kitty cannot prove safe stays);
4. `kitty-doctor` again;
5. a two-process refresh race on an expired session: one network refresh, both stay signed in.

Everything runs on loopback in private port ranges (20960-20979), is torn down at the end, and the
script exits non-zero if an expectation fails or anything is left running.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _auth_fixtures import (  # noqa: E402 - the helpers live beside this script
    login_to_home,
    read_home,
    running_server,
    same_token,
    start_worker,
)
from _daemons import run_doctor, start_counter, start_daemon  # noqa: E402
from _harness import (  # noqa: E402
    PROXY_NAMES,
    Procs,
    listening_pids,
    marked_processes,
    port_block,
    preflight_message,
    wait_exit,
    wait_for_file,
)

RANGES = port_block(18)  # sync 20960-20970, dashboard 20970-20980
WIDTH = 100


class Transcript:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def banner(self, title: str) -> None:
        print("\n" + "=" * WIDTH)
        print(title)
        print("=" * WIDTH, flush=True)

    def say(self, text: str) -> None:
        print(textwrap.fill(" ".join(text.split()), WIDTH), flush=True)

    def command(self, args: list[str], home: Path) -> tuple[int, str]:
        shown = " ".join(["kitty-doctor", *args])
        print(f"\n$ {shown}", flush=True)
        result = run_doctor(*args, home=home)
        print(textwrap.indent(result.stdout.rstrip(), "  "))
        if result.stderr.strip():
            print(textwrap.indent(result.stderr.rstrip(), "  stderr: "))
        print(f"  (exit {result.returncode})", flush=True)
        return result.returncode, result.stdout

    def expect(self, ok: bool, what: str) -> None:
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {what}", flush=True)
        if not ok:
            self.problems.append(what)


def _exits(daemon: Any) -> bool:
    try:
        wait_exit(daemon, timeout=10)
    except AssertionError:
        return False
    return True


def _scene(t: Transcript, procs: Procs, home: Path, other_home: Path) -> dict[str, Any]:
    from kitty_orphan_sweep import ensure_daemon

    sync, dash = list(RANGES.sync), list(RANGES.dashboard)
    app = ensure_daemon([sys.executable, "-m", "kitty_daemon_identity"])
    scene: dict[str, Any] = {
        "app": app,
        "stale": [
            start_daemon(procs, home, port=sync[2 + i], version=v)
            for i, v in enumerate(("3.2.2", "3.2.3", "3.2.4"))
        ],
        "cross": start_daemon(procs, other_home, port=sync[5], name="other-checkout"),
        "wedged": start_daemon(procs, home, port=sync[6], wedge="accept"),
        "web": start_counter(procs, sync[7]),
        "board": start_daemon(procs, home, family="dashboard", port=dash[2]),
    }
    rows = [
        (app.port, app.pid, "the app's sync daemon, started by ensure_daemon (recorded singleton)"),
        *[
            (d.port, d.pid, f"stale sync daemon advertising {v}")
            for d, v in zip(scene["stale"], ("3.2.2", "3.2.3", "3.2.4"), strict=True)
        ],
        (scene["cross"].port, scene["cross"].pid, "sync daemon of ANOTHER checkout (cross-home)"),
        (scene["wedged"].port, scene["wedged"].pid, "wedged sync daemon (accepts, never answers)"),
        (scene["web"].port, scene["web"].pid, "somebody else's web app in the sync range"),
        (scene["board"].port, scene["board"].pid, "dashboard daemon (other family)"),
    ]
    print(
        f"\n  sync range {RANGES.sync.start}-{RANGES.sync.stop}, "
        f"dashboard range {RANGES.dashboard.start}-{RANGES.dashboard.stop}"
    )
    for port, pid, what in rows:
        print(f"  port {port}  pid {pid:<7}  {what}")
    return scene


def _race(t: Transcript, server: Any, home: Path, workdir: Path, procs: Procs) -> None:
    """Two processes holding the same expired session refresh at the same moment."""
    server.reset()
    before = login_to_home(server, home, expired=True)
    t.say("""The session on disk is now expired. Two processes (think: two terminals running the
        CLI) both load it and are released by one barrier file at the same moment.""")
    race = workdir / "race"
    race.mkdir()
    go = race / "go"
    workers = [
        start_worker(
            name,
            "manager",
            race,
            home=home,
            server=server,
            args=[
                "--no-preload",
                "--action",
                "refresh_if_needed",
                "--ready",
                str(race / f"{name}.ready"),
                "--wait",
                str(go),
            ],
        )
        for name in ("cli-1", "cli-2")
    ]
    try:
        for w in workers:
            wait_for_file(race / f"{w.name}.ready")
        go.touch()
        codes = [w.wait(40) for w in workers]
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(10)
    results = [w.result() for w in workers]
    counters = server.counters()
    after = read_home(home)
    for w, r in zip(workers, results, strict=True):
        print(
            f"  {w.name}: outcome={r.get('outcome')!s:<22} protected call -> "
            f"HTTP {r.get('api_status')}"
        )
    print(
        f"  server: refresh_ok={counters['refresh_ok']} reuse_detected="
        f"{counters['reuse_detected']} family_revocations={counters['family_revocations']}"
    )
    t.expect(codes == [0, 0], "both processes exit 0")
    t.expect(counters["refresh_ok"] == 1, "exactly one network refresh")
    t.expect(counters["reuse_detected"] == 0, "no refresh-token reuse detected by the server")
    t.expect(all(r.get("api_status") == 200 for r in results), "both stay signed in (HTTP 200)")
    t.expect(
        after is not None and not same_token(after.refresh_token, before.refresh_token),
        "the rotated session is on disk",
    )
    outcomes = sorted(str(r.get("outcome")) for r in results)
    t.expect(
        outcomes.count("refreshed") == 1,
        f"one 'refreshed', the other adopted it ({', '.join(outcomes)})",
    )
    logs = "".join(w.log_path.read_text(errors="replace") for w in workers)
    secrets = [before.access_token, before.refresh_token]
    if after is not None:
        secrets += [after.access_token, after.refresh_token]
    t.expect(not any(s in logs for s in secrets), "no token in either process's DEBUG log")


def run(workdir: Path, t: Transcript) -> None:
    home = workdir / "home"
    home.mkdir(mode=0o700)
    other_home = workdir / "other-checkout"
    other_home.mkdir(mode=0o700)
    os.environ.update({"KITTY_HOME": str(home), **RANGES.env()})
    for name in PROXY_NAMES:
        os.environ.pop(name, None)
    procs = Procs(workdir)
    try:
        with running_server(workdir / "oauth") as server:
            t.banner("1. The scene: a developer machine after a few upgrades and checkouts")
            session = login_to_home(server, home)
            print(f"  KITTY_HOME={home}")
            print(
                f"  logged in as {session.subject or 'alice'} against the local test OAuth "
                f"server on {server.url}"
            )
            scene = _scene(t, procs, home, other_home)

            t.banner("2. kitty-doctor: what is going on?")
            code, _ = t.command([], home)
            t.expect(code == 0, "no critical finding (warnings only): exit 0")

            t.banner("3. kitty-doctor --reset: stop what kitty can prove is safe to stop")
            t.command(["--reset"], home)
            t.expect(
                all(_exits(d) for d in [*scene["stale"], scene["board"]]),
                "the three stale daemons and the dashboard orphan are gone",
            )
            alive = [scene["cross"], scene["wedged"], scene["web"]]
            t.expect(
                all(d.alive() for d in alive),
                "cross-home, wedged and third-party listeners are untouched",
            )
            app = scene["app"]
            t.expect(
                listening_pids([app.port]) == {app.port: app.pid},
                "the app's daemon (recorded singleton) still serves",
            )

            t.banner("4. kitty-doctor again")
            code, _ = t.command([], home)
            t.say("""What is left is not this home's to stop on its own: a daemon of another
                checkout (KD403: cleaned up from its own home, `kitty-doctor --home <it> --reset`),
                a wedged one (`kitty-doctor --reset --force` after review), and a web app that is
                not kitty's (never touched).""")
            t.expect(code == 0, "exit 0")
            scene["web"].settle()
            t.expect(
                scene["web"].connections() >= 1 and scene["web"].signals() == [],
                "the third-party web app was probed but never signalled",
            )

            t.banner("5. Two processes, one expired session, one refresh")
            _race(t, server, home, workdir, procs)
    finally:
        t.banner("Teardown")
        strays = procs.close()
        print(
            f"  stopped {len(procs.popens)} helper processes"
            + (f" and {len(strays)} daemon(s) started by ensure_daemon" if strays else "")
        )


def leftovers(workdir: Path) -> list[str]:
    import psutil

    left = [
        f"child {p.pid}"
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
    left += [f"daemon {p.pid}" for p in marked_processes(workdir)]
    left += [f"listener on {port}" for port in listening_pids(RANGES.all_ports())]
    return left


def main() -> int:
    busy = preflight_message(RANGES.all_ports(), "demo pre-flight")
    if busy is not None:
        print(busy, file=sys.stderr)
        return 1
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="kitty-demo-"))
    t = Transcript()
    try:
        run(workdir, t)
        left = leftovers(workdir)
        t.expect(not left, "nothing left running" + (f": {left}" if left else ""))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    t.banner(
        f"Done in {time.monotonic() - started:.1f} s: "
        + ("all expectations met" if not t.problems else f"{len(t.problems)} FAILED")
    )
    for problem in t.problems:
        print(f"  FAILED: {problem}")
    return 0 if not t.problems else 1


if __name__ == "__main__":
    sys.exit(main())
