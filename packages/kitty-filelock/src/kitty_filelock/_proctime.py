"""Process facts with the standard library only: start time, liveness, existence, boot id.

The one implementation in kitty (issue 12): kitty-daemon-identity and kitty-doctor-cli import
these names instead of carrying their own reader, so a recorded start time means the same thing
to every package.

``process_start_time`` must agree with ``psutil.Process(pid).create_time()`` (within
``START_TIME_TOLERANCE_S``) because lock records and state records written by kitty are compared
against it by tools that use psutil. On Linux both derive it the same way: ``btime`` from
``/proc/stat`` plus field 22 of ``/proc/<pid>/stat`` divided by the clock tick rate. macOS:
``sysctl(KERN_PROC_PID)``; Windows: ``GetProcessTimes``. Anything unavailable is None (unknown),
never a guess.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Final

# A plain str (not the Literal mypy narrows on), so every platform branch is type-checked.
_PLATFORM: str = sys.platform

_PROC: Final = "/proc"
#: Largest PID any supported OS can hand out (POSIX pid_t is int32; Windows uses a DWORD).
#: ctypes silently truncates larger ints, so 2**32 + 1 would ask macOS about launchd (pid 1).
_MAX_PID: Final = 0xFFFFFFFF if os.name == "nt" else 0x7FFFFFFF
#: Start times come from different clocks (/proc ticks, psutil, a float in a JSON record): one
#: second absorbs their rounding without letting a reused PID (started later) pass as the original.
START_TIME_TOLERANCE_S: Final[float] = 1.0


def _linux_boot_time() -> float | None:
    try:
        with open(f"{_PROC}/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _linux_stat_fields(pid: int) -> list[bytes] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (index 0 is the state letter), None if unreadable."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')':
    # split after the LAST ')' so a hostile name cannot shift the fields.
    _, sep, rest = raw.rpartition(b")")
    return rest.split() if sep else None


def _linux_start_time(pid: int) -> float | None:
    fields = _linux_stat_fields(pid)
    try:
        ticks = int(fields[19]) if fields is not None else None  # field 22 overall
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    boot = _linux_boot_time()
    if ticks is None or boot is None or hz <= 0:
        return None
    return boot + ticks / hz


def _darwin_start_time(pid: int) -> float | None:  # pragma: no cover - macOS only
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    ctl_kern, kern_proc, kern_proc_pid = 1, 14, 1
    mib = (ctypes.c_int * 4)(ctl_kern, kern_proc, kern_proc_pid, pid)
    # struct kinfo_proc is 648 bytes on 64-bit macOS; its first member (extern_proc) starts with
    # a union whose timeval p_starttime sits at offset 0: {long tv_sec; int tv_usec}.
    buf = ctypes.create_string_buffer(1024)
    size = ctypes.c_size_t(ctypes.sizeof(buf))
    if libc.sysctl(mib, 4, buf, ctypes.byref(size), None, 0) != 0 or size.value == 0:
        return None
    sec = ctypes.c_long.from_buffer(buf, 0).value
    usec = ctypes.c_int.from_buffer(buf, ctypes.sizeof(ctypes.c_long)).value
    if sec <= 0:
        return None
    return sec + usec / 1e6


def _windows_start_time(pid: int) -> float | None:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    handle = _windows_open_process(pid)
    if not handle:
        return None
    try:
        times = [wintypes.FILETIME() for _ in range(4)]
        times_out = (ctypes.byref(t) for t in times)
        ok = _windows_kernel32().GetProcessTimes(handle, *times_out)
        if not ok:
            return None
        created = (times[0].dwHighDateTime << 32) | times[0].dwLowDateTime
        # FILETIME counts 100 ns ticks since 1601-01-01; shift to the Unix epoch.
        return (created - 116_444_736_000_000_000) / 1e7
    finally:
        _windows_kernel32().CloseHandle(handle)


def _windows_kernel32() -> Any:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]  # WinDLL exists only on Windows
    # HANDLE is pointer-sized: the default int restype would truncate it on 64-bit Windows.
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    filetime_p = ctypes.POINTER(wintypes.FILETIME)
    kernel32.GetProcessTimes.argtypes = [wintypes.HANDLE, *([filetime_p] * 4)]
    return kernel32


def _windows_open_process(pid: int) -> Any:  # pragma: no cover - Windows only
    process_query_limited_information = 0x1000
    return _windows_kernel32().OpenProcess(process_query_limited_information, False, pid)


def _windows_pid_exists(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    handle = _windows_open_process(pid)
    if handle:
        _windows_kernel32().CloseHandle(handle)
        return True
    error_access_denied = 5  # the process exists but belongs to someone we may not query
    last_error = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]  # Windows only
    return bool(last_error == error_access_denied)


def process_start_time(pid: int | None = None) -> float | None:
    """Return when process ``pid`` (default: this process) started, as epoch seconds.

    ``None`` when no such process exists, the platform does not expose it, or ``pid`` is an
    integer no process can have (``<= 0`` or past the OS's largest pid: a recorded pid may be
    anything, and ctypes would truncate a huge one to a real pid). Never raises for those; a
    ``pid`` that is not an ``int`` at all (``True``, ``"12"``, ``1.5``) is a ``ValueError``.
    """
    if pid is None:
        pid = os.getpid()
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise ValueError(f"pid must be an int, got {pid!r}")
    if not 0 < pid <= _MAX_PID:
        return None
    if _PLATFORM.startswith("linux"):
        return _linux_start_time(pid)
    if _PLATFORM == "darwin":  # pragma: no cover - macOS only
        return _darwin_start_time(pid)
    if _PLATFORM == "win32":  # pragma: no cover - Windows only
        return _windows_start_time(pid)
    return None  # pragma: no cover - other platforms


def _is_zombie(pid: int) -> bool:
    if not _PLATFORM.startswith("linux"):  # pragma: no cover - zombies are visible via /proc only
        return False
    fields = _linux_stat_fields(pid)
    return fields is not None and len(fields) > 0 and fields[0] == b"Z"


def process_alive_since(pid: int, started_at: float) -> bool:
    """True iff ``pid`` is alive (not a zombie) and started at ``started_at`` within
    ``START_TIME_TOLERANCE_S``.

    This is the only liveness that may justify acting on a recorded pid: a pid the kernel has
    handed to an unrelated, younger process fails the start-time comparison. Same argument rules
    as ``process_start_time`` (a pid no process can have is simply not alive).
    """
    actual = process_start_time(pid)
    if actual is None or abs(actual - started_at) > START_TIME_TOLERANCE_S:
        return False
    return not _is_zombie(pid)


def pid_exists(pid: int) -> bool:
    """True if a process with this pid exists (it may belong to another user)."""
    if pid <= 0:
        return False
    if _PLATFORM == "win32":  # pragma: no cover - Windows only
        # os.kill(pid, 0) would TerminateProcess on Windows: ask for a handle instead.
        return _windows_pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def boot_id() -> str | None:
    """An identifier of the current boot (Linux boot_id, macOS kern.bootsessionuuid), else None."""
    if _PLATFORM.startswith("linux"):
        try:
            with open(f"{_PROC}/sys/kernel/random/boot_id", encoding="ascii") as fh:
                return fh.read().strip() or None
        except (OSError, ValueError):
            return None
    if _PLATFORM == "darwin":  # pragma: no cover - macOS only
        return _darwin_boot_session()
    return None  # pragma: no cover - other platforms


def _darwin_boot_session() -> str | None:  # pragma: no cover - macOS only
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    buf = ctypes.create_string_buffer(64)
    size = ctypes.c_size_t(ctypes.sizeof(buf))
    if libc.sysctlbyname(b"kern.bootsessionuuid", buf, ctypes.byref(size), None, 0) != 0:
        return None
    return buf.value.decode("ascii", "replace") or None
