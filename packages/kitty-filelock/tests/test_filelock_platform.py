"""Backend dispatch (LCK-15), the in-process registry's fork reset (LCK-21), the error tree."""

from __future__ import annotations

import os
import threading

import pytest

import kitty_filelock
from kitty_filelock import KittyLockError, LockReentryError, LockTimeout, UnsupportedPlatformError
from kitty_filelock._platform import auto_mode, available_modes, backend, check_mode
from kitty_filelock._registry import Held, Registry

POSIX = hasattr(os, "fork")


def test_public_api_is_exactly_the_spec_plus_the_shared_file_and_process_facts() -> None:
    # Sorted isort-style (constants first): ruff's RUF022 keeps it so.
    assert set(kitty_filelock.__all__) == {
        "START_TIME_TOLERANCE_S",
        "FsInfo",
        "InvalidFileError",
        "HolderStatus",
        "KittyLockError",
        "LockNotOwnedError",
        "LockProbe",
        "LockRecord",
        "LockReentryError",
        "LockTimeout",
        "MachineFileLock",
        "NetworkFilesystemWarning",
        "UnsafeDirectoryError",
        "UnsafeLockPathError",
        "UnsafePathError",
        "UnsupportedPlatformError",
        "__version__",
        "boot_id",
        "detect_filesystem",
        "force_release",
        "frozen_dataclass",
        "frozen_field",
        "frozen_field_names",
        "frozen_replace",
        "fsync_dir",
        "installed_version",
        "lazy_exports",
        "lock_holder_pids",
        "make_private_dirs",
        "open_private_append",
        "probe",
        "process_alive_since",
        "process_start_time",
        "read_json_file",
        "read_lock_record",
        "read_only_constants",
        "read_small_file",
        "require_private_dir",
        "write_private_file",
    }


def test_error_tree() -> None:
    assert issubclass(KittyLockError, OSError)
    assert issubclass(LockTimeout, TimeoutError)
    assert issubclass(LockReentryError, RuntimeError)
    assert issubclass(UnsupportedPlatformError, KittyLockError)


@pytest.mark.skipif(not POSIX, reason="POSIX backends")
def test_posix_dispatch_by_capability() -> None:
    assert available_modes() == ("fcntl", "flock")
    assert auto_mode(network=False) == "flock"
    assert auto_mode(network=True) == "fcntl"
    assert backend("flock").name == "flock"
    check_mode("auto")
    check_mode("fcntl")
    with pytest.raises(UnsupportedPlatformError, match="msvcrt"):
        check_mode("msvcrt")
    with pytest.raises(ValueError, match="bogus"):
        check_mode("bogus")


@pytest.mark.skipif(not POSIX, reason="POSIX backends")
@pytest.mark.parametrize("mode", ["flock", "fcntl"])
def test_backend_contention_and_genuine_errors(tmp_path: object, mode: str) -> None:
    impl = backend(mode)
    # A closed descriptor is a genuine error (EBADF), never "contention".
    fd = os.open(os.devnull, os.O_RDWR)
    os.close(fd)
    with pytest.raises(OSError, match="Bad file descriptor"):
        impl.try_lock(fd)


class _FakeLock:
    def __init__(self) -> None:
        self.forgotten = 0

    def _forget_after_fork(self) -> None:
        self.forgotten += 1


def test_registry_reentry_rules_and_fork_reset() -> None:
    registry = Registry()
    key = (1, 2)
    gate = registry.gate(key)
    assert registry.gate(key) is gate
    assert gate.acquire(blocking=False)
    fake = _FakeLock()
    registry.mark_held(key, Held((10, None), 5, "flock", fake))
    assert registry.is_reentry(key, (10, None))  # same thread, blocking caller
    assert registry.is_reentry(key, (10, 77))  # same thread, a task vs a blocking holder
    assert not registry.is_reentry(key, (11, None))  # another thread waits
    assert not registry.is_reentry((9, 9), (10, None))
    registry.mark_held(key, Held((10, 1), 5, "flock", fake))
    assert registry.is_reentry(key, (10, 1))  # the same task
    assert not registry.is_reentry(key, (10, 2))  # another task of the thread waits
    assert registry.held_keys() == [key]
    registry.after_fork_in_child()
    assert fake.forgotten == 1
    assert registry.held(key) is None
    fresh = registry.gate(key)
    assert fresh is not gate
    assert fresh.acquire(blocking=False)  # the parent's held gate does not leak into the child
    fresh.release()
    registry.mark_released(key)
    assert isinstance(registry.create_mutex, type(threading.Lock()))


def test_windows_lock_byte_is_beyond_any_record() -> None:
    from kitty_filelock import _windows  # importable everywhere; used only where msvcrt exists

    assert _windows.WINDOWS_LOCK_OFFSET == 2**30
    assert _windows.MsvcrtBackend.name == "msvcrt"
