"""Process start time from the OS, stdlib only (LCK-23 semantics, agrees with psutil ±1 s).

kitty-daemon-identity may not depend on kitty-filelock, so it carries its own small reader.
Linux: ``/proc/<pid>/stat`` field 22 (start ticks after boot) + ``btime`` from ``/proc/stat``,
exactly the arithmetic psutil uses. macOS: ``sysctl(KERN_PROC_PID)`` via ctypes. Windows:
``GetProcessTimes``. Anything unavailable → None (unknown), never a guess.
"""

from __future__ import annotations

import os
import sys
from typing import Final

from ._constants import START_TIME_TOLERANCE_S

__all__ = ["process_alive_since", "process_start_time"]

# Read through a variable so mypy keeps every platform branch (dispatch happens at run time).
_PLATFORM: str = sys.platform
#: Largest PID any supported OS can hand out (POSIX pid_t is int32; Windows uses a DWORD).
#: ctypes silently truncates larger ints, so 2**32 + 1 would ask macOS about launchd (pid 1).
_MAX_PID: Final = 0xFFFFFFFF if os.name == "nt" else 0x7FFFFFFF


def _linux_boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None  # pragma: no cover - every Linux /proc/stat has btime


def _linux_stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the LAST ')'.
    _, sep, rest = raw.rpartition(b")")
    if not sep:
        return None  # pragma: no cover - malformed /proc entry
    # rest[0] is field 3 (state); field 22 is rest index 19.
    return rest.decode("ascii", "replace").split()


def _linux_start_time(pid: int) -> float | None:
    fields = _linux_stat_fields(pid)
    boot = _linux_boot_time()
    if fields is None or boot is None or len(fields) < 20:
        return None
    try:
        ticks = int(fields[19])
    except ValueError:  # pragma: no cover - malformed /proc entry
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _darwin_start_time(pid: int) -> float | None:  # pragma: no cover - macOS only
    import ctypes
    import ctypes.util

    ctl_kern, kern_proc, kern_proc_pid = 1, 14, 1
    kinfo_proc_size = 648  # sizeof(struct kinfo_proc) on 64-bit macOS
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        mib = (ctypes.c_int * 4)(ctl_kern, kern_proc, kern_proc_pid, pid)
        buf = ctypes.create_string_buffer(kinfo_proc_size)
        size = ctypes.c_size_t(kinfo_proc_size)
        if libc.sysctl(mib, 4, buf, ctypes.byref(size), None, 0) != 0 or size.value == 0:
            return None
        # kp_proc.p_un.__p_starttime is a struct timeval at offset 0 of kinfo_proc.
        sec = ctypes.c_long.from_buffer(buf, 0).value
        usec = ctypes.c_int32.from_buffer(buf, ctypes.sizeof(ctypes.c_long)).value
    except (OSError, AttributeError, ValueError):
        return None
    if sec <= 0:
        return None
    return sec + usec / 1e6


def _windows_start_time(pid: int) -> float | None:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    process_query_limited_information = 0x1000
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]  # WinDLL exists only on Windows
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return None
    try:
        creation, exited, kernel, user = (wintypes.FILETIME() for _ in range(4))
        ok = kernel32.GetProcessTimes(
            handle,
            ctypes.byref(creation),
            ctypes.byref(exited),
            ctypes.byref(kernel),
            ctypes.byref(user),
        )
        if not ok:
            return None
        ticks = (creation.dwHighDateTime << 32) | creation.dwLowDateTime
        # FILETIME counts 100 ns intervals since 1601-01-01.
        return (ticks - 116444736000000000) / 1e7
    finally:
        kernel32.CloseHandle(handle)


def process_start_time(pid: int | None = None) -> float | None:
    """Epoch seconds at which ``pid`` (default: this process) started, or None if unknown."""
    target = os.getpid() if pid is None else pid
    if isinstance(target, bool) or not isinstance(target, int) or not 0 < target <= _MAX_PID:
        return None
    if _PLATFORM.startswith("linux"):
        return _linux_start_time(target)
    if _PLATFORM == "darwin":  # pragma: no cover - macOS only
        return _darwin_start_time(target)
    if os.name == "nt":  # pragma: no cover - Windows only
        return _windows_start_time(target)
    return None  # pragma: no cover - other platforms: unknown


def _is_zombie(pid: int) -> bool:
    if not _PLATFORM.startswith("linux"):  # pragma: no cover - zombies: only via /proc
        return False
    fields = _linux_stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] == "Z"


def process_alive_since(pid: int, started_at: float) -> bool:
    """True iff ``pid`` is alive (not a zombie) and started at ``started_at`` ±1 s.

    This is the only liveness that may justify acting on a recorded PID: a PID the kernel has
    handed to an unrelated, younger process fails the start-time comparison.
    """
    actual = process_start_time(pid)
    if actual is None or abs(actual - started_at) > START_TIME_TOLERANCE_S:
        return False
    return not _is_zombie(pid)
