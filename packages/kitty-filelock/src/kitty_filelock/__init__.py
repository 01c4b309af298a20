"""kitty-filelock: a machine-wide, crash-safe file lock with an inspectable holder record.

The kernel lock (``flock``, fcntl byte-range locks on network filesystems, ``msvcrt`` on Windows)
is the truth; the JSON record the holder writes into the locked file says who holds it, for
humans and ``kitty-doctor``. A crashed holder's lock is freed by the OS; a live holder is never
displaced. Zero runtime dependencies. See the package README for guarantees per filesystem.

    from kitty_filelock import MachineFileLock

    with MachineFileLock("~/.kitty/auth/refresh.lock", label="refresh") as lock:
        print(lock.record)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("kitty-filelock")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0+unknown"

from ._errors import (
    KittyLockError,
    LockNotOwnedError,
    LockReentryError,
    LockTimeout,
    NetworkFilesystemWarning,
    UnsafeLockPathError,
    UnsupportedPlatformError,
)
from ._force import force_release
from ._fs import FsInfo, detect_filesystem
from ._lock import MachineFileLock
from ._probe import LockProbe, lock_holder_pids, probe
from ._proctime import process_start_time
from ._record import HolderStatus, LockRecord, read_lock_record
from ._safety import make_private_dirs

__all__ = [
    "FsInfo",
    "HolderStatus",
    "KittyLockError",
    "LockNotOwnedError",
    "LockProbe",
    "LockRecord",
    "LockReentryError",
    "LockTimeout",
    "MachineFileLock",
    "NetworkFilesystemWarning",
    "UnsafeLockPathError",
    "UnsupportedPlatformError",
    "__version__",
    "detect_filesystem",
    "force_release",
    "lock_holder_pids",
    "make_private_dirs",
    "probe",
    "process_start_time",
    "read_lock_record",
]
