"""kitty-filelock: a machine-wide, crash-safe file lock with an inspectable holder record.

It also owns the file and process facts every kitty package shares (issue 12): process start
time, liveness and boot id; private directories and files (0700/0600 whatever the umask, never
written through a symlink, atomic replace with fsync); and a JSON reader that never blocks on a
FIFO, follows a link or crashes on deep nesting.

The kernel lock (``flock``, fcntl byte-range locks on network filesystems, ``msvcrt`` on Windows)
is the truth; the JSON record the holder writes into the locked file says who holds it, for
humans and ``kitty-doctor``. A crashed holder's lock is freed by the OS; a live holder is never
displaced. Zero runtime dependencies. See the package README for guarantees per filesystem.

    from kitty_filelock import MachineFileLock

    with MachineFileLock("~/.kitty/auth/refresh.lock", label="refresh") as lock:
        print(lock.record)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exports import lazy_exports
from ._installed import installed_version
from ._readonly import read_only_constants

if TYPE_CHECKING:
    from ._errors import (
        InvalidFileError,
        KittyLockError,
        LockNotOwnedError,
        LockReentryError,
        LockTimeout,
        NetworkFilesystemWarning,
        UnsafeDirectoryError,
        UnsafeLockPathError,
        UnsafePathError,
        UnsupportedPlatformError,
    )
    from ._force import force_release
    from ._frozen import frozen_dataclass, frozen_field, frozen_field_names, frozen_replace
    from ._fs import FsInfo, detect_filesystem
    from ._jsonfile import read_json_file, read_small_file
    from ._lock import MachineFileLock
    from ._probe import LockProbe, lock_holder_pids, probe
    from ._proctime import START_TIME_TOLERANCE_S, boot_id, process_alive_since, process_start_time
    from ._record import HolderStatus, LockRecord, read_lock_record
    from ._safety import make_private_dirs, require_private_dir
    from ._write import fsync_dir, open_private_append, write_private_file

# Not importlib.metadata: importing it costs more than this whole package (see _installed).
__version__: str = installed_version("kitty-filelock") or "0.0.0+unknown"

__all__ = [
    "START_TIME_TOLERANCE_S",
    "FsInfo",
    "HolderStatus",
    "InvalidFileError",
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
]

#: Where each public name lives; each loads on first use, so importing the package is cheap.
_HOMES = {
    "InvalidFileError": "_errors",
    "KittyLockError": "_errors",
    "LockNotOwnedError": "_errors",
    "LockReentryError": "_errors",
    "LockTimeout": "_errors",
    "NetworkFilesystemWarning": "_errors",
    "UnsafeDirectoryError": "_errors",
    "UnsafeLockPathError": "_errors",
    "UnsafePathError": "_errors",
    "UnsupportedPlatformError": "_errors",
    "force_release": "_force",
    "frozen_dataclass": "_frozen",
    "frozen_field": "_frozen",
    "frozen_field_names": "_frozen",
    "frozen_replace": "_frozen",
    "FsInfo": "_fs",
    "detect_filesystem": "_fs",
    "read_json_file": "_jsonfile",
    "read_small_file": "_jsonfile",
    "MachineFileLock": "_lock",
    "LockProbe": "_probe",
    "lock_holder_pids": "_probe",
    "probe": "_probe",
    "START_TIME_TOLERANCE_S": "_proctime",
    "boot_id": "_proctime",
    "process_alive_since": "_proctime",
    "process_start_time": "_proctime",
    "HolderStatus": "_record",
    "LockRecord": "_record",
    "read_lock_record": "_record",
    "make_private_dirs": "_safety",
    "require_private_dir": "_safety",
    "fsync_dir": "_write",
    "open_private_append": "_write",
    "write_private_file": "_write",
}
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

read_only_constants(
    __name__,
    {"START_TIME_TOLERANCE_S": "fixed: one tolerance for every start-time comparison in kitty"},
)
