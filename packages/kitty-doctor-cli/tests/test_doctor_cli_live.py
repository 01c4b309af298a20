"""End to end against real reference daemons in a temp home (ports 20400-20599 only).

safe_auto orphans are swept by `--reset`, operator_required ones are skipped (with the --force
hint) until `--force` or an interactive "y", never_touch listeners and other families survive
everything, and every JSON output validates against the schema.
"""

from __future__ import annotations

import os
import pty
import pwd
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _doctorkit import run, write_session
from _procs import Daemon, ThirdParty, port_is_free

pytestmark = pytest.mark.slow


@pytest.fixture
def third_party() -> Iterator[ThirdParty]:
    listener = ThirdParty(20433)
    try:
        yield listener
    finally:
        listener.close()


def _by_port(records: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {r["port"]: r for r in records}


def test_reset_sweeps_safe_skips_operator_then_force(
    home: Path, spawn: Callable[..., Daemon], third_party: ThirdParty
) -> None:
    write_session(home)
    singleton = spawn(20430)
    singleton.make_singleton()
    stale = spawn(20431, extra=["--advertise-version", "3.2.2"])
    pre_marker = spawn(20432, markers=False)
    dashboard = spawn(20460, family="dashboard")

    doc = run("--json").json()
    sync = _by_port(doc["orphans"]["sync"])
    assert set(sync) == {20431, 20432, 20433}
    assert sync[20431]["cleanup_class"] == "safe_auto"
    assert sync[20431]["package_version"] == "3.2.2"
    assert (sync[20432]["cleanup_class"], sync[20432]["skip_reason"]) == (
        "operator_required",
        "pre_marker",
    )
    assert sync[20433]["cleanup_class"] == "never_touch"
    assert doc["daemons"]["sync"]["health"] == "healthy"
    assert [r["port"] for r in doc["orphans"]["dashboard"]] == [20460]
    ids = [f["id"] for f in doc["findings"]]
    assert ids == ["KD401", "KD402"]
    assert doc["exit_code"] == 0

    human = run("--family", "sync")
    assert "kitty-doctor --family sync --reset" in human.out
    assert "1 other listener kitty never touches" in human.out

    reset = run("--json", "--family", "sync", "--reset").json()
    block = reset["repairs"]["reset"]
    assert [e["port"] for e in block["swept"]] == [20431]
    assert {e["port"] for e in block["skipped"]} >= {20432, 20433}
    assert block["failed"] == []
    assert block["consent"] == "not_asked"
    assert "--force" in block["hint"]
    assert stale.proc.wait(timeout=10) is not None
    assert port_is_free(20431)
    assert pre_marker.alive()
    assert singleton.alive()
    assert dashboard.alive()
    # The report after the repair shows the post-repair state.
    assert set(_by_port(reset["orphans"]["sync"])) == {20432, 20433}
    assert [f["id"] for f in reset["findings"]] == ["KD402"]

    forced = run("--json", "--family", "sync", "--reset", "--force").json()
    block = forced["repairs"]["reset"]
    assert [e["port"] for e in block["swept"]] == [20432]
    assert block["consent"] == "forced"
    assert pre_marker.proc.wait(timeout=10) is not None
    assert singleton.alive()
    assert dashboard.alive()
    assert third_party.connections > 0  # it was looked at ...
    assert set(_by_port(forced["orphans"]["sync"])) == {20433}  # ... and left alone
    assert forced["findings"] == []


def _converse(args: list[str], answer: bytes, env: dict[str, str]) -> tuple[int, str]:
    """Run kitty-doctor on a pseudo-terminal, answer its prompt, return (exit code, transcript)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kitty_doctor", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
        # A terminal's foreground job gets ^C: undo an inherited SIG_IGN (a CI run started in
        # the background of a script ignores SIGINT, and Python then keeps ignoring it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    transcript = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            transcript += chunk
            if not answered and b"[y/N]" in transcript:
                if answer == b"<SIGINT>":  # ^C: what the terminal driver would deliver
                    proc.send_signal(signal.SIGINT)
                else:
                    os.write(master, answer)
                answered = True
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    assert answered, transcript.decode(errors="replace")
    return code, transcript.decode(errors="replace")


@pytest.mark.parametrize(
    ("answer", "stopped"),
    [(b"n\n", False), (b"\n", False), (b"y\n", True), (b"\x04", False), (b"<SIGINT>", False)],
)
def test_interactive_prompt_on_a_terminal(
    home: Path, spawn: Callable[..., Daemon], answer: bytes, stopped: bool
) -> None:
    write_session(home)
    pre_marker = spawn(20440, markers=False)
    env = dict(os.environ, KITTY_HOME=str(home))
    code, text = _converse(["--reset", "--family", "sync"], answer, env)
    # What the operator reviews: what, why in words, owner, age, root, command line (the
    # terminal is narrow: lines are wrapped, so compare with whitespace normalised).
    flat = " ".join(text.split())
    assert f"sync port 20440 pid {pre_marker.pid}" in flat
    assert "needs your review: no kitty marker: started before kitty 0.1" in flat
    assert f"owner {pwd.getpwuid(os.getuid()).pw_name}, up < 1 minute, no root marker" in flat
    assert "command " + sys.executable in flat
    assert "pre_marker" not in text
    assert "Stop 1 daemon(s) kitty cannot prove are safe to stop? [y/N]" in text
    assert "stopped whatever you answer" in flat
    assert "Traceback" not in text
    # ^D / ^C end the prompt's line: the report continues on a line of its own.
    after_prompt = text.split("[y/N] ", 1)[1]
    assert after_prompt.split("\n", 1)[0].strip() in ("", "n", "y", "^D", "^C"), after_prompt[:80]
    if stopped:
        assert pre_marker.proc.wait(timeout=10) is not None
        assert f"port 20440 pid {pre_marker.pid}: stopped" in flat
    else:
        assert pre_marker.alive()
        assert "re-run with --force" in flat
        assert f"left alone port 20440 pid {pre_marker.pid}: no kitty marker" in flat
    assert code == 0


def test_every_printed_remediation_acts(
    home: Path, spawn: Callable[..., Daemon], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: each `kitty-doctor …` remediation repeats the options that changed its verdict
    (`--home`, `--family`, `--expected-daemon-version`, `--stuck-threshold`); run as printed,
    each one makes its own finding go away."""
    import shlex

    from _procs import kill_holder_leaving_record

    write_session(home)
    other = tmp_path / "other-checkout"
    singleton = spawn(20441)
    singleton.make_singleton()
    orphan = spawn(20442)
    pre_marker = spawn(20443, markers=False)
    stranger = spawn(20444, home=other)  # a daemon of another home that still exists
    kill_holder_leaving_record(home / "auth" / "refresh.lock")
    # The environment names another (empty) home: only --home makes a remediation act here.
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "decoy"))
    args = ["--home", str(home), "--family", "sync", "--expected-daemon-version", "9.9.9"]
    args += ["--stuck-threshold", "0"]
    doc = run("--json", *args).json()
    commands = {
        f["id"]: f["remediation"]["command"]
        for f in doc["findings"]
        if (f["remediation"]["command"] or "").startswith("kitty-doctor")
    }
    assert sorted(commands) == ["KD202", "KD301", "KD401", "KD402", "KD403"], doc["findings"]
    for id_, command in commands.items():
        argv = shlex.split(command)[1:]
        assert (id_, "--family", "sync") == (id_, *argv[argv.index("--family") :][:2])
        result = run("--json", *argv)
        assert result.code in (0, 1), result.err
        after = run("--json", *args).json()
        assert id_ not in {f["id"] for f in after["findings"]}, (command, after["findings"])
    for daemon in (singleton, orphan, pre_marker, stranger):
        assert daemon.proc.wait(timeout=10) is not None
    assert run("--json", *args).json()["findings"] == []


# Runs the doctor as `nobody` (uid 65534). The interpreter lives under root's 0700 home, so the
# doctor cannot start as nobody: it starts as root, runs once read-only (so every lazy import is
# loaded while the files are readable), then drops to nobody for the run under test.
AS_NOBODY = """
import contextlib, io, os, sys
import encodings.ascii, encodings.idna, pwd
# nobody cannot read root's venv: what the repair path imports on first use is imported now.
import concurrent.futures.thread, secrets, shutil, subprocess
import kitty_doctor._cli as cli
for warm in ([], ["--json"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main_with_args(warm + ["--family", "sync", "--home", "/nonexistent-warm-up"])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(cli.main_with_args(sys.argv[1:]))
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to run the doctor as a second user (nobody)",
)
def test_as_another_user_roots_daemons_are_not_yours(spawn: Callable[..., Daemon]) -> None:
    """Issue 15: as another user, root's daemon is "not yours (owner root)", an information line,
    never a `--reset --force` recommendation (which could never work) nor a target."""
    import json
    import shutil
    import tempfile

    roots = spawn(20446)  # root's daemon, from root's (test) home
    base = Path(tempfile.mkdtemp(prefix="kitty-nobody-"))
    try:
        os.chown(base, 65534, 65534)
        env = dict(os.environ, KITTY_HOME=str(base / ".kitty"))

        def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-c", AS_NOBODY, "--family", "sync", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )

        doc = json.loads(as_nobody("--json").stdout)
        (rec,) = doc["orphans"]["sync"]
        assert rec["port"] == 20446
        assert rec["process"]["user"] == "root"
        assert rec["process"]["yours"] is False
        assert [f["id"] for f in doc["findings"]] == ["KD101"]
        human = as_nobody()
        assert "· sync port 20446 pid" in human.stdout
        assert "not yours (owner root)" in human.stdout
        assert "--force" not in human.stdout
        reset = json.loads(as_nobody("--json", "--reset", "--force").stdout)["repairs"]["reset"]
        assert reset["failed"] == []
        assert reset["swept"] == []
        (left,) = reset["skipped"]
        assert (left["port"], left["not_yours"], left["owner"]) == (20446, True, "root")
        assert roots.alive()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to run the doctor as a second user (nobody)",
)
@pytest.mark.parametrize("case", ["auth_dir_0000", "session_of_another_user"])
def test_an_unreadable_session_is_kd106_and_no_section_crashes(case: str) -> None:
    """Issue 12: unreadable is not corrupt. As `nobody`, a 0000 auth directory and a session
    file root wrote are each one finding with the fix that makes it readable again; no
    section crashes (the refresh lock says it could not look) and nothing is moved."""
    import json
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="kitty-nobody-"))
    try:
        home, auth = base / ".kitty", base / ".kitty" / "auth"
        auth.mkdir(parents=True)
        session = auth / "session.json"
        session.write_text('{"not": "looked at"}', encoding="utf-8")
        for path in (base, home, auth):
            os.chown(path, 65534, 65534)
            os.chmod(path, 0o700)
        if case == "auth_dir_0000":
            os.chown(session, 65534, 65534)
            os.chmod(auth, 0o000)
            fix = f"chmod 700 {auth}"
        else:
            os.chmod(session, 0o600)  # root's file in nobody's auth dir
            fix = f"sudo chown 65534 {session}"
        done = subprocess.run(
            [sys.executable, "-c", AS_NOBODY, "--json", "--family", "sync"],
            capture_output=True,
            text=True,
            env=dict(os.environ, KITTY_HOME=str(home)),
            timeout=60,
            check=False,
        )
        doc = json.loads(done.stdout)
        assert all(s["status"] == "ok" for s in doc["sections"].values()), doc["sections"]
        kd106 = [f for f in doc["findings"] if f["id"] == "KD106"]
        assert [f["remediation"]["command"] for f in kd106] == [fix]
        assert "KD102" not in {f["id"] for f in doc["findings"]}
        assert doc["identity"]["state"] == "unreadable"
        if case == "auth_dir_0000":
            assert doc["refresh_lock"]["held"] is None
            assert doc["refresh_lock"]["unreadable"] == "Permission denied"
        os.chmod(auth, 0o700)
        assert session.read_text(encoding="utf-8") == '{"not": "looked at"}'
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX threads and signals")
def test_a_ctrl_c_taken_by_another_thread_still_ends_the_wait_for_an_answer() -> None:
    """The kernel may hand SIGINT to any thread (the scan's idle workers): a read blocked in
    the main thread is then not interrupted. The prompt's wait must still end at once."""
    import threading

    from kitty_doctor._run import read_answer

    read_end, write_end = os.pipe()
    rescued = threading.Event()
    returned = threading.Event()

    def another_thread() -> None:
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # this thread takes it
        if not returned.wait(10):  # hang cap: unblock the read so the test fails, not hangs
            rescued.set()
            os.write(write_end, b"n\n")

    helper = threading.Thread(target=another_thread)
    # A terminal's foreground job gets ^C as KeyboardInterrupt, whatever this run inherited (a
    # run started in the background of a script ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with os.fdopen(read_end, "r") as stdin:
        helper.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                read_answer(stdin)
        finally:
            returned.set()
            helper.join(timeout=15)
            os.close(write_end)
            signal.signal(signal.SIGINT, previous)
    assert not rescued.is_set(), "the ^C was only seen after the answer arrived"
