"""``MachineFileLock``: the acquisition algorithm, shared by every platform.

One attempt = stat the path for its (device, inode) -> take the in-process gate for that inode
(non-blocking) -> open the file -> try the OS lock (non-blocking) -> write the record into the
locked descriptor. Contention at the gate or at the OS lock backs off adaptively and retries
until the deadline. Everything that does not change per acquisition (identity, filesystem,
record bytes around the timestamp) is computed once, so an uncontended acquisition costs little
more than the system calls themselves.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import random
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import Final, Self

from . import _fairness as fairness
from ._errors import (
    KittyLockError,
    LockNotOwnedError,
    LockReentryError,
    LockTimeout,
    NetworkFilesystemWarning,
    UnsafeLockPathError,
)
from ._fs import FsInfo, detect_filesystem
from ._platform import LockBackend, backend, check_mode
from ._record import (
    LockRecord,
    RecordTemplate,
    local_identity,
    read_lock_record,
    record_template,
    utc_stamp_now,
)
from ._registry import REGISTRY, Held, Key, Owner, file_key
from ._safety import NOFOLLOW_FLAGS, make_private_dirs, unsafe_reason

DEFAULT_ACQUIRE_TIMEOUT_S: Final = 10.0
DEFAULT_POLL_INTERVAL_S: Final = 0.05
# LCK-03: the first retry comes after ~1 ms so a short critical section hands over in a few ms
# (fixed 50 ms polling is why peers take 40-250 ms); waits double up to poll_interval.
FIRST_RETRY_S: Final = 0.001
JITTER: Final = 0.2

_OPEN_FLAGS: Final = (
    os.O_RDWR
    | getattr(os, "O_CLOEXEC", 0)  # exec'd children inherit nothing (LCK-21)
    | getattr(os, "O_NOINHERIT", 0)  # the Windows spelling of the same
    | getattr(os, "O_BINARY", 0)
    | NOFOLLOW_FLAGS  # never write through a final symlink; a FIFO is refused, not waited on
)
_CREATE_FLAGS: Final = _OPEN_FLAGS | os.O_CREAT | os.O_EXCL
_FILE_MODE: Final = 0o600
_HAS_PWRITE: Final = hasattr(os, "pwrite")

# Per directory: the filesystem does not change under a directory while we run.
_FS_CACHE: dict[str, FsInfo] = {}
_WARNED: set[str] = set()
# Per absolute path as given: (normalised path, directory).
_ABSOLUTE: dict[str, tuple[str, str]] = {}
_ABSOLUTE_MAX: Final = 256


def _with_path(exc: OSError, path: str) -> OSError:
    """The same errno (so the same OSError subclass), now naming the lock path."""
    if exc.filename is not None or isinstance(exc, KittyLockError):
        return exc
    return OSError(exc.errno, exc.strerror, path)


# Bound once: these run on every acquisition and release.
_get_ident = threading.get_ident
_monotonic = time.monotonic
_modules = sys.modules


def _current_task_id() -> int | None:
    # asyncio is not imported here: it costs more than this whole package, and a program that
    # never imported it has no event loop running, so no task.
    asyncio = _modules.get("asyncio")
    if asyncio is None:
        return None
    loop = asyncio._get_running_loop()
    task = asyncio.current_task(loop) if loop is not None else None
    return None if task is None else id(task)


def _current_owner() -> Owner:
    """(this thread, the running asyncio task or None): who may release what it acquired."""
    return (_get_ident(), _current_task_id())


def _owns(holder: Owner) -> bool:
    """May the caller act as `holder`? Same thread, and the same task unless the lock was taken
    by blocking code (task None), which any code of that thread may release."""
    return holder[0] == _get_ident() and (holder[1] is None or holder[1] == _current_task_id())


def _absolute(raw: str) -> tuple[str, str]:
    """(absolute path, its directory). Cached for absolute inputs only: a relative path's
    meaning changes with the working directory."""
    known = _ABSOLUTE.get(raw)
    if known is not None:
        return known
    path = os.path.abspath(raw)
    answer = (path, os.path.dirname(path))
    if os.path.isabs(raw):
        if len(_ABSOLUTE) >= _ABSOLUTE_MAX:
            _ABSOLUTE.clear()
        _ABSOLUTE[raw] = answer
    return answer


def _fs_for(directory: str) -> FsInfo:
    info = _FS_CACHE.get(directory)
    if info is None:
        info = _FS_CACHE[directory] = detect_filesystem(directory)
    return info


def _check_number(name: str, value: object, *, minimum: float, inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    ok = value >= minimum if inclusive else value > minimum
    if not ok:
        op = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {op} {minimum}, got {value!r}")
    return float(value)


class _Wait:
    """One acquisition's waiting state: the descriptor a fair waiter keeps between tries."""

    __slots__ = ("announced", "fd")

    def __init__(self) -> None:
        self.fd: int | None = None
        self.announced = False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # also drops the waiting announcement
            self.fd = None
        self.announced = False


class MachineFileLock:
    """A machine-wide exclusive lock on ``path`` with a holder record written inside it.

    Use as ``with lock:``, ``async with lock:``, or ``acquire()``/``release()``. The kernel lock
    is the truth: a crashed holder's lock is freed by the OS and the next acquirer overwrites its
    stale record; a live holder is never displaced, however old its record (no TTL takeover).
    Not re-entrant: the thread (or task) that holds the path gets ``LockReentryError``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_S,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        max_hold: float | None = None,
        label: str | None = None,
        mode: str = "auto",
    ) -> None:
        try:
            raw: str | bytes = os.fspath(path)
        except TypeError:
            raise TypeError(f"path must be str or os.PathLike, got {path!r}") from None
        if isinstance(raw, bytes) or not raw:
            raise ValueError(f"path must be a non-empty str path, got {path!r}")
        self._path, self._dir = _absolute(raw)
        # The defaults need no checking (one lock object per use is the common pattern).
        self._acquire_timeout = (
            DEFAULT_ACQUIRE_TIMEOUT_S
            if acquire_timeout is DEFAULT_ACQUIRE_TIMEOUT_S
            else _check_number("acquire_timeout", acquire_timeout, minimum=0.0, inclusive=True)
        )
        self._poll_interval = (
            DEFAULT_POLL_INTERVAL_S
            if poll_interval is DEFAULT_POLL_INTERVAL_S
            else _check_number("poll_interval", poll_interval, minimum=0.0, inclusive=False)
        )
        self._max_hold = (
            None
            if max_hold is None
            else _check_number("max_hold", max_hold, minimum=0.0, inclusive=False)
        )
        if label is not None and not isinstance(label, str):
            raise ValueError(f"label must be a str or None, got {label!r}")
        if not isinstance(mode, str):
            raise ValueError(f"mode must be a str, got {mode!r}")
        check_mode(mode)  # UnsupportedPlatformError here, at construction, never at import
        self._mode = mode
        self._label = label
        # Resolved lazily (the directory may not exist yet) and re-resolved after a fork.
        self._template: RecordTemplate | None = None
        self._backend: LockBackend | None = None
        self._per_process_lock = False
        self._fair = False
        self._fs: FsInfo | None = None
        # Holding state, changed only under `_claim` (threads and tasks may share this object).
        self._claim = threading.Lock()
        self._owner: Owner | None = None
        self._fd: int | None = None
        self._key: Key | None = None
        self._gate: threading.Lock | None = None
        self._stamp = ""
        self._acquired = 0.0
        self._record: LockRecord | None = None
        self._waited_s = 0.0

    # ------------------------------------------------------------------ public state

    @property
    def path(self) -> str:
        """The absolute lock file path."""
        return self._path

    @property
    def mode(self) -> str:
        """The requested mode (``auto`` until resolved) or, once resolved, the concrete one."""
        return self._backend.name if self._backend is not None else self._mode

    @property
    def is_held(self) -> bool:
        """True while this object holds the lock (False in a forked child)."""
        return self._fd is not None

    @property
    def record(self) -> LockRecord | None:
        """The record this holder wrote, while held; else None."""
        if self._fd is None or self._template is None:
            return None
        if self._record is None:
            self._record = self._template.record(self._stamp)
        return self._record

    @property
    def waited_s(self) -> float:
        """How long the last successful acquisition waited (seconds)."""
        return self._waited_s

    def __repr__(self) -> str:
        state = "held" if self.is_held else "unheld"
        return f"MachineFileLock({self._path!r}, mode={self.mode!r}, {state})"

    # ------------------------------------------------------------------ acquisition

    def _resolve(self) -> RecordTemplate:
        ident = local_identity()
        template = self._template
        if template is not None and template.pid == ident.pid:
            return template
        fs = _fs_for(self._dir)
        mode = fs.mode if self._mode == "auto" else self._mode
        if fs.host_local_only and self._path not in _WARNED:
            _WARNED.add(self._path)
            warnings.warn(
                f"{self._path} is on {fs.fs_type}"
                + (" mounted with local locks (nolock/local_lock)" if fs.local_locks else "")
                + ", which does not carry locks to other hosts: "
                "the lock excludes processes of this host only; keep lock files on a local "
                "filesystem to exclude other machines",
                NetworkFilesystemWarning,
                stacklevel=4,
            )
        self._fs = fs
        self._backend = backend(mode)
        self._per_process_lock = mode == "fcntl"
        self._fair = fairness.applies(mode)
        self._template = record_template(
            ident, label=self._label, mode=mode, fs_type=fs.fs_type, max_hold_s=self._max_hold
        )
        return self._template

    def _open(self) -> int:
        try:
            return os.open(self._path, _OPEN_FLAGS)
        except FileNotFoundError:
            return self._create()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeLockPathError(self._path, "is a symbolic link") from None
            raise

    def _create(self) -> int:
        make_private_dirs(self._dir)
        try:
            fd = os.open(self._path, _CREATE_FLAGS, _FILE_MODE)
        except FileExistsError:  # another process created it just now: use theirs
            return self._open()
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _FILE_MODE)  # exactly 0600 whatever the umask
        return fd

    def _still_at_path(self, st: os.stat_result) -> bool:
        """After the kernel lock: does the path still name the inode we locked? A third party
        (a tmp cleaner) unlinking or replacing the file between our open and our lock would
        otherwise let a second acquirer lock a fresh inode beside us."""
        try:
            now = os.lstat(self._path)
        except FileNotFoundError:
            return False
        return now.st_ino == st.st_ino and now.st_dev == st.st_dev

    def _stat_key(self) -> Key:
        try:
            return file_key(os.lstat(self._path))
        except FileNotFoundError:
            pass
        # Create under a process-wide mutex, re-checking first: opening and closing a
        # descriptor of a file another thread of ours has just locked in fcntl mode would
        # silently drop that thread's lock.
        with REGISTRY.create_mutex:
            try:
                return file_key(os.lstat(self._path))
            except FileNotFoundError:
                pass
            fd = self._open()
            try:
                return file_key(os.fstat(fd))
            finally:
                os.close(fd)

    def _lock_fcntl(self, owner: Owner) -> tuple[int, os.stat_result, Key, threading.Lock] | None:
        """fcntl locks belong to the PROCESS and die with ANY close of the file: take the
        in-process gate first (keyed by a path stat) and open a descriptor only once no thread
        of ours can be holding the inode."""
        key = self._stat_key()
        gate = REGISTRY.gate(key)
        if not gate.acquire(blocking=False):
            if REGISTRY.is_reentry(key, owner):
                raise LockReentryError(self._path)
            return None
        fd = -1
        try:
            fd = self._open()
            assert self._backend is not None
            if self._backend.try_lock(fd):
                st = os.fstat(fd)
                if file_key(st) == key and self._still_at_path(st):
                    return fd, st, key, gate
                # The path now names another inode than the one our gate protects: retry.
                self._backend.unlock(fd)
            os.close(fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            gate.release()
            raise
        gate.release()
        return None

    def _lock_per_descriptor(
        self, owner: Owner, wait: _Wait
    ) -> tuple[int, os.stat_result, Key, threading.Lock] | None:
        """flock and msvcrt locks belong to the open file (handle): two descriptors conflict
        even inside one process, and closing a second descriptor drops nothing. So the cheap
        order applies: open, lock, then fstat for the key and take the in-process gate.

        A fair waiter (``_fairness``) keeps its descriptor between tries, announced as waiting.
        """
        fd = wait.fd
        if fd is None:
            fd = self._open()
        else:
            wait.fd = None
        try:
            assert self._backend is not None
            if not self._backend.try_lock(fd):
                key = file_key(os.fstat(fd))
                if REGISTRY.is_reentry(key, owner):
                    raise LockReentryError(self._path)
                self._keep_waiting(fd, wait)
                return None
            st = os.fstat(fd)
            if not self._still_at_path(st):
                self._backend.unlock(fd)
                os.close(fd)
                wait.announced = False
                return None  # retried, on whatever the path names now
            key = (st.st_dev, st.st_ino)
            if self._fair and self._should_yield(key, fd):
                self._backend.unlock(fd)
                self._keep_waiting(fd, wait)
                return None
            gate = REGISTRY.gate(key)
            if gate.acquire(blocking=False):
                if wait.announced:
                    fairness.withdraw(fd)
                    wait.announced = False
                return fd, st, key, gate
            # A thread of ours is between its unlock and its gate release (or a reader holds
            # the gate for a moment): that is contention too.
            self._backend.unlock(fd)
            self._keep_waiting(fd, wait)
            return None
        except BaseException:
            os.close(fd)
            wait.announced = False
            raise

    def _keep_waiting(self, fd: int, wait: _Wait) -> None:
        """Contention: a fair waiter keeps ``fd`` and announces itself; others close it."""
        if not self._fair:
            os.close(fd)
            return
        wait.fd = fd
        if not wait.announced:
            wait.announced = fairness.announce(fd)

    @staticmethod
    def _should_yield(key: Key, fd: int) -> bool:
        """This process has kept re-taking the lock for ``HOG_S``, released it moments ago, and
        others announce they wait: let one of them have it first (for about as long as we held
        it, a few milliseconds at most). Costs a clock read and a dict lookup when it does not
        look (the uncontended path)."""
        now = _monotonic()
        last = REGISTRY.last_release(key)  # [released at, held for, look for waiters at]
        if now - last[0] > fairness.RETAKE_S and now - last[0] >= fairness.yield_window(last[1]):
            last[2] = now + fairness.HOG_S  # not a re-take: a new streak starts
            return False
        if now < last[2]:
            return False
        if fairness.others_waiting(fd):
            return True
        last[2] = now + fairness.HOG_S  # nobody waits: look again after another HOG_S
        return False

    def _attempt(self, owner: Owner, wait: _Wait) -> bool:
        """One non-blocking try. True: held. False: contention. Anything else raises.

        Another thread or task holding THIS object is contention like any other holder: it
        waits its turn (never the kernel's business, so never a second descriptor).
        """
        with self._claim:
            if self._owner is not None:
                if REGISTRY.is_reentry_of(self._owner, owner):
                    raise LockReentryError(self._path)
                return False
            return self._attempt_unclaimed(owner, wait)

    def _attempt_unclaimed(self, owner: Owner, wait: _Wait) -> bool:
        template = self._template
        if template is None or template.pid != os.getpid():
            template = self._resolve()
        try:
            locked = (
                self._lock_fcntl(owner)
                if self._per_process_lock
                else self._lock_per_descriptor(owner, wait)
            )
        except OSError as exc:
            # e.g. ENOLCK from a filesystem without lock support: a genuine error, with the path.
            named = _with_path(exc, self._path)
            if named is exc:
                raise
            raise named from exc
        if locked is None:
            return False
        fd, st, key, gate = locked
        lock_impl = self._backend
        assert lock_impl is not None
        stamp = utc_stamp_now()
        try:
            unsafe = unsafe_reason(st)
            if unsafe is not None:
                raise UnsafeLockPathError(self._path, unsafe)
            # st was taken while holding the lock, so an empty file is really empty: after a
            # clean release (the common case) the truncate-to-0 can be skipped.
            self._write_record(fd, template.encode(stamp), truncate=st.st_size > 0)
        except BaseException as exc:
            # LCK-05: a held lock never has an empty record - give the lock back first.
            try:
                lock_impl.unlock(fd)
            finally:
                os.close(fd)
                gate.release()
            if isinstance(exc, OSError) and exc.filename is None:
                raise _with_path(exc, self._path) from exc
            raise
        self._owner = owner
        self._fd = fd
        self._key = key
        self._gate = gate
        self._stamp = stamp
        self._acquired = _monotonic()
        self._record = None
        REGISTRY.mark_held(key, Held(owner, fd, lock_impl.name, self))
        return True

    @staticmethod
    def _write_record(fd: int, data: bytes, *, truncate: bool = True) -> None:
        # Into the LOCKED descriptor, never temp+rename: a rename would detach the lock from
        # the path and the next acquirer would lock a different inode.
        if truncate:
            os.ftruncate(fd, 0)
        offset = 0
        if _HAS_PWRITE:
            offset = os.pwrite(fd, data, 0)
            if offset == len(data):
                return  # the common case: one call wrote it all
        view = memoryview(data)
        while offset < len(data):
            if _HAS_PWRITE:
                written = os.pwrite(fd, view[offset:], offset)
            else:  # pragma: no cover - Windows
                os.lseek(fd, offset, os.SEEK_SET)
                written = os.write(fd, view[offset:])
            if written <= 0:  # pragma: no cover - a regular file never returns 0 for len > 0
                raise OSError(5, "short write of the lock record")
            offset += written

    def _timeout(self, started: float) -> LockTimeout:
        return LockTimeout(self._path, read_lock_record(self._path), time.monotonic() - started)

    @staticmethod
    def _next_delay(delay: float, poll_interval: float) -> tuple[float, float]:
        """(this wait with +-20 % jitter, the next base wait)."""
        wait = delay * random.uniform(1.0 - JITTER, 1.0 + JITTER)
        return wait, min(delay * 2.0, poll_interval)

    def acquire(self, timeout: float | None = None) -> None:
        """Block (politely polling) until held or ``timeout`` s passed (``.record`` says what
        was written; it is built on first access, keeping acquisition cheap).

        ``timeout`` overrides ``acquire_timeout`` for this call; 0 means a single try.
        Raises ``LockTimeout`` (with the holder's record) or ``LockReentryError``.
        """
        owner = _current_owner()
        limit = self._acquire_timeout if timeout is None else self._limit(timeout)
        started = _monotonic()
        wait = _Wait()
        # The uncontended case in one try, without the retry loop's generator.
        if self._attempt(owner, wait):
            self._waited_s = self._acquired - started
            return
        for pause in self._tries(owner, limit, started, wait):
            time.sleep(pause)

    async def acquire_async(self, timeout: float | None = None) -> None:
        """Like ``acquire`` but waits with ``asyncio.sleep``: the event loop never blocks."""
        import asyncio  # loaded already: this coroutine runs in its event loop

        owner = _current_owner()
        limit = self._limit(timeout)
        for pause in self._tries(owner, limit, time.monotonic(), _Wait()):
            await asyncio.sleep(pause)

    def _tries(self, owner: Owner, limit: float, started: float, wait: _Wait) -> Iterator[float]:
        """Try until held, yielding each backoff wait; ``LockTimeout`` at the deadline.

        The caller does the waiting (``time.sleep`` or ``asyncio.sleep``): that is the only
        difference between the blocking and the async acquisition. ``wait`` may carry the
        descriptor of a try the caller already made.
        """
        deadline = started + limit
        delay = min(FIRST_RETRY_S, self._poll_interval)
        try:
            while not self._attempt(owner, wait):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout(started)
                # An announced waiter polls briskly: a releaser yields to it only briefly.
                ceiling = self._poll_interval
                if wait.announced:
                    ceiling = fairness.poll_ceiling(time.monotonic() - started, ceiling)
                pause, delay = self._next_delay(min(delay, ceiling), ceiling)
                yield min(pause, remaining)
        finally:
            wait.close()
        self._waited_s = self._acquired - started

    def _limit(self, timeout: float | None) -> float:
        if timeout is None:
            return self._acquire_timeout
        return _check_number("timeout", timeout, minimum=0.0, inclusive=True)

    # ------------------------------------------------------------------ release

    def release(self) -> None:
        """Clear the record, unlock, close. Idempotent; a no-op in a forked child.

        Only the thread (or task) that acquired may release: anyone else gets
        ``LockNotOwnedError`` and the lock stays exactly as it is. Never unlinks the file: a
        contender's O_CREAT would mint a second inode and two processes would both hold "the"
        lock.
        """
        with self._claim:
            owner = self._owner
            fd = self._fd
            key = self._key
            gate = self._gate
            if owner is None or fd is None or key is None or gate is None:
                return
            if not _owns(owner):
                raise LockNotOwnedError(self._path)
            self._owner = None
            self._fd = None
            self._key = None
            self._gate = None
            self._record = None
            backend_ = self._backend
            assert backend_ is not None
            try:
                os.ftruncate(fd, 0)
            except OSError as exc:
                raise _with_path(exc, self._path) from exc
            finally:
                try:
                    backend_.unlock(fd)
                except OSError as exc:
                    raise _with_path(exc, self._path) from exc
                finally:
                    os.close(fd)
                    now = _monotonic()
                    REGISTRY.mark_released(key, now - self._acquired, now)
                    gate.release()

    def _forget_after_fork(self) -> None:
        """In a forked child: we are not the holder. Close our copy WITHOUT unlocking."""
        fd = self._fd
        # A parent thread may have held `_claim` at fork time: the child needs a fresh one.
        self._claim = threading.Lock()
        self._owner = None
        self._fd = None
        self._key = None
        self._gate = None
        self._record = None
        self._template = None  # the pid in the record template belongs to the parent
        if fd is not None:
            with contextlib.suppress(OSError):  # already closed by the application
                os.close(fd)

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> Self:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
