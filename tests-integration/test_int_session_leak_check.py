"""The session fixture's leak check (SPEC §6: "a session fixture fails the run if any spawned
process or listener leaks") can fail: it names a forgotten child listening in the suite's port
block, and a daemon rooted in the test's temp dir that is no longer our descendant (a worker's
`ensure_daemon` child, re-parented when the worker exited); once they are stopped it is quiet.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _daemons import daemon_argv, start_counter
from _harness import (
    TEST_PORTS,
    Procs,
    find_leaks,
    listening_pids,
    marked_processes,
    port_block,
    stop_pids,
    wait_for,
)

BLOCK = port_block(19)  # 20980-20999: no other test uses it


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform == "win32", reason="re-parenting through sh is POSIX")
def test_leak_check_names_a_forgotten_listener_and_a_reparented_daemon(tmp_path: Path) -> None:
    before = listening_pids(TEST_PORTS)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    procs = Procs(tmp_path)
    strays: list[Any] = []
    try:
        forgotten = start_counter(procs, BLOCK.sync[0])
        # sh starts the daemon in the background and exits: the daemon is nobody's child of ours.
        argv = daemon_argv(home, port=BLOCK.sync[1])
        launcher = subprocess.run(
            ["sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "sh", *argv],
            env={"KITTY_HOME": str(home), "PATH": "/usr/bin:/bin"},
            timeout=30,
            check=True,
        )
        assert launcher.returncode == 0
        wait_for(
            lambda: BLOCK.sync[1] in listening_pids([BLOCK.sync[1]]),
            timeout=20,
            what="the re-parented daemon's listener",
        )
        strays = marked_processes(tmp_path)
        assert len(strays) == 1

        leaks = find_leaks(tmp_path, before)

        text = "\n".join(leaks.descriptions)
        assert f"child pid {forgotten.pid} " in text
        assert f"daemon rooted in the session's temp dir: pid {strays[0].pid} " in text
        assert f"listener on port {BLOCK.sync[0]}: pid {forgotten.pid} " in text
        assert f"listener on port {BLOCK.sync[1]}: pid {strays[0].pid} " in text
        assert {forgotten.pid, strays[0].pid} <= {p.pid for p in leaks.processes}
    finally:
        procs.close()
        stop_pids(strays)

    after = "\n".join(find_leaks(tmp_path, before).descriptions)
    for needle in (forgotten.pid, strays[0].pid, BLOCK.sync[0], BLOCK.sync[1]):
        assert re.search(rf"\b{needle}\b", after) is None, after
