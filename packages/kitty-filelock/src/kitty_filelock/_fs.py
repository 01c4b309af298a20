"""Which filesystem a path lives on, and which lock primitive suits it.

Linux answers from ``/proc/self/mountinfo`` (the longest mount point that prefixes the resolved
path); the text is injectable so the decision is unit-testable for filesystems the test machine
does not have. A network filesystem gets fcntl byte-range locks (``F_SETLK``) in ``auto`` mode
because that is the primitive NFS propagates to the server; BSD ``flock`` may stay client-local.
"""

from __future__ import annotations

import os
import sys
from typing import Final

from ._frozen import frozen_dataclass
from ._platform import auto_mode

# A plain str (not the Literal mypy narrows on), so every platform branch is type-checked.
_PLATFORM: str = sys.platform

NETWORK_FS_LINUX: Final = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "fuse.davfs2",
    }
)
NETWORK_FS_DARWIN: Final = frozenset({"nfs", "smbfs", "afpfs", "webdav", "cifs"})
# Filesystems that carry no lock to other hosts: the lock still excludes processes of THIS host
# only, so users are warned once per path (LCK-18).
HOST_LOCAL_LOCK_FS: Final = frozenset({"fuse.sshfs", "9p", "davfs", "fuse.davfs2", "webdav"})

_MOUNTINFO: Final = "/proc/self/mountinfo"


@frozen_dataclass
class FsInfo:
    """Filesystem facts for a lock path: type name, whether it is remote, the auto lock mode."""

    fs_type: str
    network: bool
    mode: str
    #: The mount keeps locks on this host (NFS ``nolock`` / ``local_lock=all|posix|flock``).
    local_locks: bool = False

    @property
    def host_local_only(self) -> bool:
        """True when locks on this filesystem do not reach other hosts."""
        return self.fs_type in HOST_LOCAL_LOCK_FS or self.local_locks


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        chunk = field[i : i + 4]
        if len(chunk) == 4 and chunk[0] == "\\" and chunk[1:].isdigit():
            out.append(chr(int(chunk[1:], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


#: Mount options with which NFS grants locks locally only (other hosts never see them).
_LOCAL_LOCK_OPTIONS: Final = frozenset(
    {"nolock", "local_lock=all", "local_lock=posix", "local_lock=flock"}
)


def mount_from_mountinfo(path: str, mountinfo: str) -> tuple[str, frozenset[str]]:
    """(fstype, mount and superblock options) of the longest mount point prefixing ``path``
    (absolute); ``("unknown", frozenset())`` when none matches."""
    best_len = -1
    best: tuple[str, frozenset[str]] = ("unknown", frozenset())
    for line in mountinfo.splitlines():
        parts = line.split()
        try:
            sep = parts.index("-")
            mount_point = _unescape(parts[4])
            fs_type = parts[sep + 1]
            options = {
                *parts[5].split(","),
                *(parts[sep + 3].split(",") if len(parts) > sep + 3 else ()),
            }
        except (ValueError, IndexError):
            continue  # a malformed line is skipped, never fatal
        if mount_point == "/":
            matches = True
        else:
            matches = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        # ">=" so that a later mount over the same point (it shadows the earlier one) wins.
        if matches and len(mount_point) >= best_len:
            best_len = len(mount_point)
            best = (fs_type, frozenset(options))
    return best


def fs_type_from_mountinfo(path: str, mountinfo: str) -> str:
    """The fstype of the longest mount point prefixing ``path`` (absolute), or ``"unknown"``."""
    return mount_from_mountinfo(path, mountinfo)[0]


def _existing_ancestor(path: str) -> str:
    # The lock file (and even its directory) may not exist yet: classify the nearest existing
    # ancestor, which is where they will be created.
    current = os.path.realpath(os.path.abspath(path))
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _darwin_fs_type(path: str) -> str:  # pragma: no cover - macOS only
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return "unknown"
    libc = ctypes.CDLL(libc_name, use_errno=True)
    # struct statfs (64-bit inode variant) is 2168 bytes; f_fstypename (char[16]) is at offset 72.
    try:
        # x86_64 exports the 64-bit-inode layout under this name; arm64 only has it as statfs.
        statfs = libc["statfs$INODE64"]
    except AttributeError:
        statfs = libc.statfs
    buf = ctypes.create_string_buffer(4096)
    if statfs(os.fsencode(path), buf) != 0:
        return "unknown"
    return buf.raw[72:88].split(b"\0", 1)[0].decode("ascii", "replace") or "unknown"


def _windows_fs(path: str) -> tuple[str, bool]:  # pragma: no cover - Windows only
    import ctypes

    full = os.path.abspath(path)
    if full.startswith("\\\\"):
        return "smb", True
    drive = os.path.splitdrive(full)[0] + "\\"
    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined,unused-ignore]  # Windows only
    drive_remote = 4
    remote = kernel32.GetDriveTypeW(drive) == drive_remote
    name = ctypes.create_unicode_buffer(64)
    ok = kernel32.GetVolumeInformationW(drive, None, 0, None, None, None, name, 64)
    return (name.value.lower() if ok and name.value else "unknown"), remote


def detect_filesystem(path: str | os.PathLike[str], *, mountinfo: str | None = None) -> FsInfo:
    """Classify the filesystem ``path`` lives (or will live) on.

    ``mountinfo`` overrides the text of ``/proc/self/mountinfo`` (tests); it is only consulted on
    Linux or when given. Never raises for an unreadable mount table: the type becomes "unknown".
    """
    if mountinfo is not None:
        # An injected table describes another machine: classify the path as written.
        target = os.path.normpath(os.path.abspath(os.fspath(path)))
    else:
        target = _existing_ancestor(os.fspath(path))
    local_locks = False
    if mountinfo is not None or _PLATFORM.startswith("linux"):
        if mountinfo is None:
            try:
                with open(_MOUNTINFO, encoding="utf-8", errors="surrogateescape") as fh:
                    mountinfo = fh.read()
            except OSError:
                mountinfo = ""
        fs_type, options = mount_from_mountinfo(target, mountinfo)
        network = fs_type in NETWORK_FS_LINUX
        local_locks = network and bool(options & _LOCAL_LOCK_OPTIONS)
    elif _PLATFORM == "darwin":  # pragma: no cover - macOS only
        fs_type = _darwin_fs_type(target)
        network = fs_type in NETWORK_FS_DARWIN
    elif _PLATFORM == "win32":  # pragma: no cover - Windows only
        fs_type, network = _windows_fs(target)
    else:  # pragma: no cover - other platforms
        fs_type, network = "unknown", False
    return FsInfo(
        fs_type=fs_type, network=network, mode=auto_mode(network), local_locks=local_locks
    )
