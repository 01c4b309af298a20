"""The README's Python examples run as written and do what their comments say.

The README sits next to this tests directory in the source tree, which is also where the
standalone session runs these tests from (against the installed wheel), so it is found relative
to this file in both runs.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kitty_filelock import HolderStatus, read_lock_record

if TYPE_CHECKING:
    from conftest import SpawnHolder, TryLockInChild

README = Path(__file__).parents[1] / "README.md"
USAGE, INSPECT = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), re.DOTALL)


def _run(block: str, name: str, **names: Any) -> dict[str, Any]:
    """Execute one README block in a fresh namespace (plus `names`); return that namespace."""
    namespace: dict[str, Any] = {"__name__": f"readme_{name}", **names}
    exec(compile(block, f"README.md ({name})", "exec"), namespace)  # noqa: S102 - our own README
    return namespace


@pytest.fixture
def readme_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples lock ~/.kitty/auth/refresh.lock; ~ is a private temp dir here."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Path.home() == tmp_path
    return tmp_path / ".kitty" / "auth" / "refresh.lock"


def test_usage_example_holds_the_lock_inside_the_block_and_releases_it_after(
    readme_lock: Path, try_lock_in_child: TryLockInChild
) -> None:
    printed: list[tuple[object, ...]] = []
    other_process_saw: list[str] = []

    def print_and_look(*args: object) -> None:
        # The example prints from inside `with lock:`; at that moment another process must be
        # unable to take the lock.
        printed.append(args)
        other_process_saw.append(try_lock_in_child(readme_lock))

    namespace = _run(USAGE, "usage", print=print_and_look)

    # One print (inside the block): our pid and the wait. The LockTimeout branch did not run,
    # because the lock was free again for the single try after the block.
    assert len(printed) == 1
    pid, waited_s = printed[0]
    assert pid == os.getpid()
    assert isinstance(waited_s, float)
    assert waited_s >= 0.0
    assert other_process_saw == ["timeout"]
    # Released after: not held, record truncated, and another process gets it at once.
    assert not namespace["lock"].is_held
    assert read_lock_record(readme_lock) is None
    assert try_lock_in_child(readme_lock) == "acquired"
    assert stat.S_IMODE(readme_lock.stat().st_mode) == 0o600
    assert stat.S_IMODE(readme_lock.parent.stat().st_mode) == 0o700


def test_inspect_example_names_a_live_holder_and_never_clears_its_record(
    readme_lock: Path, spawn_holder: SpawnHolder, try_lock_in_child: TryLockInChild
) -> None:
    # Backdated past older_than: only liveness may protect the record, not its age.
    holder = spawn_holder(readme_lock, backdate_s=120.0)
    namespace = _run(INSPECT, "inspect")
    info, record = namespace["info"], namespace["record"]
    assert info.held is True
    assert info.holder_pid == holder.pid
    assert not info.stale_record
    assert record.pid == holder.pid
    assert record.holder_status() is HolderStatus.ALIVE
    assert namespace["cleared"] is False
    assert try_lock_in_child(readme_lock) == "timeout"
    holder.release()


def test_inspect_example_clears_the_stale_record_of_a_killed_holder(
    readme_lock: Path, spawn_holder: SpawnHolder, try_lock_in_child: TryLockInChild
) -> None:
    holder = spawn_holder(readme_lock, backdate_s=120.0)
    holder.kill()  # SIGKILL: the kernel frees the lock, the record stays behind
    namespace = _run(INSPECT, "inspect")
    info, record = namespace["info"], namespace["record"]
    assert info.held is False
    assert info.stale_record
    assert record.pid == holder.pid
    assert record.holder_status() is HolderStatus.DEAD
    assert namespace["cleared"] is True
    assert read_lock_record(readme_lock) is None
    assert readme_lock.exists()  # cleared, never unlinked
    assert try_lock_in_child(readme_lock) == "acquired"


def test_inspect_example_runs_when_there_is_no_lock_file_at_all(readme_lock: Path) -> None:
    namespace = _run(INSPECT, "inspect")
    assert namespace["info"].held is False
    assert namespace["record"] is None
    assert namespace["cleared"] is False
    assert not readme_lock.exists()  # inspecting never creates the file
