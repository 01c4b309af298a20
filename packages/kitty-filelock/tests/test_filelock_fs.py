"""detect_filesystem on injected mountinfo (LCK-17) and the auto mode it implies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kitty_filelock import FsInfo, detect_filesystem
from kitty_filelock._fs import HOST_LOCAL_LOCK_FS, fs_type_from_mountinfo
from kitty_filelock._platform import auto_mode

POSIX = hasattr(os, "fork")
MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
30 27 0:27 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k
40 27 0:40 / /mnt/nfs rw,relatime shared:1 - nfs4 server:/export rw,vers=4.2
41 27 0:41 / /mnt/smb rw,relatime - cifs //host/share rw,vers=3.0
42 27 0:42 / /home/me/remote rw,nosuid - fuse.sshfs me@host:/ rw,user_id=0
43 40 0:43 / /mnt/nfs/local rw - ext4 /dev/vdb rw
44 27 0:44 / /mnt/with\\040space rw - 9p share rw
this line is garbage
45 27 0:45 / /mnt/short
"""


@pytest.mark.parametrize(
    ("path", "fs_type", "network"),
    [
        ("/home/me/project/.kitty/auth/refresh.lock", "ext4", False),
        ("/tmp/x/y.lock", "tmpfs", False),
        ("/tmpfoo/y.lock", "ext4", False),  # a prefix match must end at a path separator
        ("/mnt/nfs/home/.kitty/refresh.lock", "nfs4", True),
        ("/mnt/nfs", "nfs4", True),
        ("/mnt/nfs/local/x.lock", "ext4", False),  # longest prefix wins
        ("/mnt/smb/a.lock", "cifs", True),
        ("/home/me/remote/.kitty/a.lock", "fuse.sshfs", True),
        ("/mnt/with space/a.lock", "9p", True),  # octal-escaped mount point
    ],
)
def test_injected_mountinfo_samples(path: str, fs_type: str, network: bool) -> None:
    info = detect_filesystem(path, mountinfo=MOUNTINFO)
    assert info == FsInfo(fs_type=fs_type, network=network, mode=auto_mode(network))
    if POSIX:
        assert info.mode == ("fcntl" if network else "flock")


def test_host_local_only_filesystems() -> None:
    assert detect_filesystem("/home/me/remote/x", mountinfo=MOUNTINFO).host_local_only
    assert not detect_filesystem("/mnt/nfs/x", mountinfo=MOUNTINFO).host_local_only
    assert {"fuse.sshfs", "9p", "davfs"} <= HOST_LOCAL_LOCK_FS


def test_later_mount_over_the_same_point_shadows_the_earlier() -> None:
    text = "1 0 0:1 / / - ext4 a rw\n2 1 0:2 / /data - ext4 b rw\n3 1 0:3 / /data - nfs c rw\n"
    assert fs_type_from_mountinfo("/data/x", text) == "nfs"


def test_empty_or_garbage_mountinfo_is_unknown_not_an_error() -> None:
    assert fs_type_from_mountinfo("/x", "") == "unknown"
    info = detect_filesystem("/x", mountinfo="nonsense\n\n")
    assert info.fs_type == "unknown"
    assert info.network is False


def test_nonexistent_path_classifies_its_nearest_existing_ancestor(tmp_path: Path) -> None:
    real = detect_filesystem(tmp_path)
    assert detect_filesystem(tmp_path / "not" / "yet" / "x.lock") == real


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/mountinfo")
def test_real_mount_table_classifies_the_root() -> None:
    info = detect_filesystem("/")
    assert info.fs_type != "unknown"
    assert info.fs_type == fs_type_from_mountinfo("/", Path("/proc/self/mountinfo").read_text())


NOLOCK = (
    "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    "41 22 0:41 / /mnt/a rw,relatime - nfs server:/a rw,vers=3,nolock,proto=tcp\n"
    "42 22 0:42 / /mnt/b rw,relatime - nfs4 server:/b rw,vers=4.2,local_lock=all\n"
    "43 22 0:43 / /mnt/c rw,relatime - nfs4 server:/c rw,vers=4.2,local_lock=none\n"
    "44 22 8:2 / /data rw,nolock - ext4 /dev/sdb1 rw\n"
)


@pytest.mark.parametrize(
    ("path", "host_only"),
    [
        ("/mnt/a/x.lock", True),
        ("/mnt/b/x.lock", True),
        ("/mnt/c/x.lock", False),
        ("/data/x", False),
    ],
)
def test_nfs_with_local_locks_is_host_local_only(path: str, host_only: bool) -> None:
    info = detect_filesystem(path, mountinfo=NOLOCK)
    assert info.host_local_only is host_only
    assert info.local_locks is host_only
