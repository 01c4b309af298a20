"""``probe``: is the lock held right now, and by whom - without writing, truncating or keeping it.

The record says who last wrote it; only the OS knows who holds the lock now (the "true holder").
Linux lists every lock in ``/proc/locks`` by device and inode, which costs the holder nothing.
Elsewhere, fcntl mode can ask ``F_GETLK``; as a last resort a SHARED non-blocking lock is tried on
a fresh descriptor and dropped at once (it fails against an exclusive holder and never writes).
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Final

from ._frozen import frozen_dataclass
from ._fs import detect_filesystem
from ._platform import available_modes, backend
from ._record import LockRecord, read_lock_record
from ._registry import Held, Key, file_key, with_own_fd_or_holder

# A plain str (not the Literal mypy narrows on), so every platform branch is type-checked.
_PLATFORM: str = sys.platform

PROC_LOCKS: Final = "/proc/locks"
# O_NONBLOCK: opening a FIFO planted at the lock path must not hang a reader.
_READ_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


@frozen_dataclass
class LockProbe:
    """A snapshot of a lock file: who holds it now (if anyone) and what its record says.

    ``holder_source`` is ``"proc_locks"`` (Linux kernel table), ``"f_getlk"`` (fcntl query),
    ``"record"`` (held, pid taken from the record), ``"registry"`` (this very process holds it)
    or ``None`` (not held / unknown). ``held`` is ``None`` when it could not be determined.
    """

    held: bool | None
    holder_pid: int | None
    holder_source: str | None
    record: LockRecord | None
    stale_record: bool
    mode: str
    fs_type: str
    network_fs: bool
    age_s: float | None
    #: Every process holding the lock now, as the OS shows it (Linux: each pid with a descriptor
    #: on the locked open file description, e.g. a forked child after its parent died); ()
    #: when not held or the OS cannot tell. ``holder_pid`` may name a pid that has exited.
    holder_pids: tuple[int, ...] = ()

    @property
    def max_hold_s(self) -> float | None:
        """The holder's advisory ``max_hold`` from the record (LCK-22), if any."""
        return None if self.record is None else self.record.max_hold_s


def proc_locks_holders(text: str, key: Key) -> list[int]:
    """PIDs holding an exclusive lock on inode ``key`` according to ``/proc/locks`` text.

    Blocked waiters (``->`` lines) and shared (READ) locks - e.g. another prober's - are not
    holders. Lines look like ``1: FLOCK  ADVISORY  WRITE 6377 fe:00:2146559 0 EOF``.
    """
    dev, ino = key
    want = (os.major(dev), os.minor(dev), ino)
    pids: list[int] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6 or parts[1] == "->":
            continue
        if parts[3] != "WRITE":
            continue
        try:
            major, minor, inode = parts[5].split(":")
            where = (int(major, 16), int(minor, 16), int(inode))
            pid = int(parts[4])
        except ValueError:
            continue
        if where == want and pid > 0:
            pids.append(pid)
    return pids


_PROC: Final = "/proc"
_MAX_FDS_PER_PROCESS: Final = 1_000_000  # bound on one process's descriptor walk


def _fd_holds_exclusive_lock(fdinfo: str) -> bool:
    """Does this ``/proc/<pid>/fdinfo/<fd>`` text list an exclusive lock held through the fd?

    The kernel lists, per descriptor, the flock locks of its open file description and the fcntl
    locks of its process (``lock:\t1: FLOCK  ADVISORY  WRITE 6377 fe:00:2146559 0 EOF``); a
    blocked waiter is shown with ``->``.
    """
    for line in fdinfo.splitlines():
        if not line.startswith("lock:"):
            continue
        parts = line[5:].split()
        if len(parts) >= 4 and parts[1] != "->" and parts[3] == "WRITE":
            return True
    return False


def _pid_holds(pid_dir: str, key: Key) -> bool:
    try:
        fds = os.scandir(os.path.join(pid_dir, "fd"))
    except OSError:
        return False  # gone, or another user's process we may not look into
    with fds:
        for count, fd in enumerate(fds):
            if count >= _MAX_FDS_PER_PROCESS:
                break
            try:
                if file_key(os.stat(fd.path)) != key:
                    continue
                with open(os.path.join(pid_dir, "fdinfo", fd.name), encoding="ascii") as fh:
                    if _fd_holds_exclusive_lock(fh.read()):
                        return True
            except (OSError, ValueError):
                continue
    return False


def lock_holder_pids(path: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """PIDs holding the exclusive lock on ``path`` right now, as the OS shows them, sorted.

    Linux only (``/proc/<pid>/fdinfo``): every process with a descriptor through which the lock
    is held, so after ``fork`` both parent and child are listed, and a locker that exited while a
    child kept the inherited descriptor is not. ``()`` if nobody holds it; None where the OS
    cannot tell (no /proc, or the file cannot be stat-ed). Processes of other users are visible
    only to root. Never opens the lock file itself, so it cannot disturb a lock.
    """
    if not _PLATFORM.startswith("linux"):
        return None  # pragma: no cover - Linux only
    try:
        key = file_key(os.stat(os.fspath(path)))
        entries = [e.path for e in os.scandir(_PROC) if e.name.isdigit()]
    except OSError:
        return None
    return tuple(sorted(int(os.path.basename(d)) for d in entries if _pid_holds(d, key)))


def _flock_struct_layout() -> str | None:
    if struct.calcsize("P") != 8:  # pragma: no cover - 32-bit builds: layouts vary, skip
        return None
    if _PLATFORM.startswith("linux"):
        return "hhxxxxqqixxxx"  # l_type, l_whence, l_start, l_len, l_pid
    if _PLATFORM == "darwin" or "bsd" in _PLATFORM:  # pragma: no cover - BSD family
        return "qqihh"  # l_start, l_len, l_pid, l_type, l_whence
    return None  # pragma: no cover - unknown layout: do not guess


def f_getlk_holder(fd: int) -> int | None:
    """PID of a process holding a conflicting fcntl lock on ``fd``'s file, 0 if none, None if
    the query is unavailable. Never takes a lock."""
    import fcntl

    layout = _flock_struct_layout()
    if layout is None:  # pragma: no cover - unknown layout
        return None
    if layout.startswith("hh"):
        query = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, l_pid = struct.unpack(layout, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    else:  # pragma: no cover - BSD family
        query = struct.pack(layout, 0, 0, 0, fcntl.F_WRLCK, os.SEEK_SET)
        _, _, l_pid, l_type, _ = struct.unpack(layout, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    if l_type == fcntl.F_UNLCK:
        return 0
    return int(l_pid) if l_pid > 0 else None


def _try_shared(path: str, modes: tuple[str, ...]) -> bool | None:
    """True if an exclusive holder blocks a shared lock in any of ``modes``; None if the file
    cannot be opened. The shared lock (if obtained) is dropped immediately; nothing is written."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        for mode in modes:
            impl = backend(mode)
            if not impl.try_lock(fd, shared=True):
                return True
            impl.unlock(fd)
        return False
    finally:
        os.close(fd)


def _f_getlk_path(path: str) -> int | None:
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        return f_getlk_holder(fd)
    finally:
        os.close(fd)


def _read_proc_locks() -> str | None:
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def probe(path: str | os.PathLike[str]) -> LockProbe:
    """Report whether ``path`` is locked right now and by whom; never writes or keeps a lock.

    Never creates the file. If this process holds the lock, the answer comes from the in-process
    registry (opening and closing a second descriptor would drop our own fcntl lock).
    """
    path = os.path.abspath(os.fspath(path))
    fs = detect_filesystem(path)
    record = read_lock_record(path)
    age = None if record is None else record.age_s()

    def result(
        held: bool | None,
        pid: int | None,
        source: str | None,
        mode: str | None = None,
        holders: tuple[int, ...] = (),
    ) -> LockProbe:
        chosen = mode or (record.mode if record is not None and record.mode else fs.mode)
        return LockProbe(
            held=held,
            holder_pid=pid,
            holder_source=source if held else None,
            record=record,
            stale_record=record is not None and held is False,
            mode=chosen,
            fs_type=fs.fs_type,
            network_fs=fs.network,
            age_s=age,
            holder_pids=holders if held else (),
        )

    try:
        key = file_key(os.stat(path))
    except FileNotFoundError:
        return result(False, None, None)
    except OSError:
        return result(None, None, None)
    record_pid = None if record is None else record.pid

    def from_registry(held: Held) -> LockProbe:
        return result(True, os.getpid(), "registry", held.mode, lock_holder_pids(path) or ())

    def from_os() -> LockProbe:
        if _PLATFORM.startswith("linux"):
            text = _read_proc_locks()
            if text is not None:
                pids = proc_locks_holders(text, key)
                if pids:
                    # /proc/locks names the pid that took the lock, even after it exited.
                    holders = lock_holder_pids(path) or ()
                    return result(True, pids[0], "proc_locks", holders=holders)
        elif fs.mode == "fcntl" and "fcntl" in available_modes():  # pragma: no cover - BSD/macOS
            pid = _f_getlk_path(path)
            if pid:
                return result(True, pid, "f_getlk")
        # Not listed (another host over NFS, a filesystem whose device numbers /proc/locks
        # reports differently, or no kernel table at all): ask the lock itself, politely.
        contended = _try_shared(path, available_modes())
        if contended is None:
            return result(None, None, None)
        if contended:
            return result(True, record_pid, "record")
        return result(False, None, None)

    answer = with_own_fd_or_holder(key, from_os, from_registry)
    return answer if answer is not None else result(None, None, None)  # pragma: no branch
