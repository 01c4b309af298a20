"""Process facts are kitty-filelock's (issue 12): this package re-exports them, and its callers
(the daemon's retirement check, the scope id) get exactly the owner's behaviour.

The readers themselves (psutil agreement, zombies, malformed /proc) are tested where they live,
in kitty-filelock's test_filelock_proctime.py.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import psutil
import pytest

import kitty_daemon_identity as kdi
import kitty_filelock
from kitty_daemon_identity import _constants, _scope, namespace_id
from kitty_filelock import _proctime

LINUX = sys.platform.startswith("linux")


def test_the_public_names_are_the_owners() -> None:
    assert kdi.process_start_time is kitty_filelock.process_start_time
    assert kdi.process_alive_since is kitty_filelock.process_alive_since
    assert kdi.START_TIME_TOLERANCE_S == kitty_filelock.START_TIME_TOLERANCE_S == 1.0
    assert _constants.START_TIME_TOLERANCE_S is kitty_filelock.START_TIME_TOLERANCE_S


@pytest.mark.skipif(not LINUX, reason="the /proc seam")
def test_without_proc_the_daemon_side_knows_no_start_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_proctime, "_PROC", str(tmp_path / "no-proc"))
    assert kdi.process_start_time() is None
    assert not kdi.process_alive_since(os.getpid(), psutil.Process().create_time())


@pytest.mark.parametrize("pid", [-1, 0, 2**31, 10**400])
def test_pids_no_process_can_have_are_unknown(pid: int) -> None:
    assert kdi.process_start_time(pid) is None
    assert not kdi.process_alive_since(pid, 1.0)


@pytest.mark.parametrize("bad", [True, "12", 1.5])
def test_a_pid_that_is_not_an_int_is_the_owners_value_error(bad: object) -> None:
    # Before issue 12 this package's copy answered None; the one documented behaviour is the
    # owner's (a type error, which mypy also reports) - see CHANGELOG.
    with pytest.raises(ValueError, match="pid must be an int"):
        kdi.process_start_time(bad)  # type: ignore[arg-type]  # deliberately bad


@pytest.mark.skipif(not LINUX, reason="the /proc seam")
def test_the_scope_id_uses_the_owners_boot_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = namespace_id()
    random_dir = tmp_path / "sys" / "kernel" / "random"
    random_dir.mkdir(parents=True)
    (random_dir / "boot_id").write_text("another-boot\n")
    monkeypatch.setattr(_proctime, "_PROC", str(tmp_path))
    assert _scope._boot_id() == "another-boot"
    assert namespace_id() != base


@pytest.mark.skipif(not LINUX, reason="the /proc seam")
@pytest.mark.parametrize("content", [None, b"\xff\xfe\n"], ids=["missing", "not-ascii"])
def test_without_a_readable_boot_id_the_scope_falls_back_to_the_hostname(
    content: bytes | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if content is not None:
        random_dir = tmp_path / "sys" / "kernel" / "random"
        random_dir.mkdir(parents=True)
        (random_dir / "boot_id").write_bytes(content)
    monkeypatch.setattr(_proctime, "_PROC", str(tmp_path))
    # A boot id that is not ASCII raised UnicodeDecodeError out of namespace_id() before.
    assert _scope._boot_id() == "host:" + socket.gethostname()
    assert len(namespace_id()) == 16
