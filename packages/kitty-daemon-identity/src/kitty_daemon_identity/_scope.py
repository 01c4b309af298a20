"""Scope identity: which daemon root, machine, namespace and user a daemon serves (DID-04)."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from pathlib import Path

__all__ = ["namespace_id", "scope_id"]

_PLATFORM: str = sys.platform  # a variable keeps every platform branch visible to mypy


def _boot_id() -> str:
    """The kernel's boot id; the hostname only where the OS exposes none.

    The boot id (not the hostname) is preferred so that renaming the machine does not change
    every scope id and orphan every running daemon.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            value = fh.read().strip()
        if value:
            return value
    except OSError:
        pass
    if _PLATFORM == "darwin":  # pragma: no cover - macOS only
        session_uuid = _darwin_boot_session_uuid()
        if session_uuid:
            return session_uuid
    return "host:" + socket.gethostname()  # pragma: no cover - platforms without a boot id


def _darwin_boot_session_uuid() -> str | None:  # pragma: no cover - macOS only
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buf = ctypes.create_string_buffer(128)
        size = ctypes.c_size_t(len(buf))
        if libc.sysctlbyname(b"kern.bootsessionuuid", buf, ctypes.byref(size), None, 0) != 0:
            return None
        return buf.value.decode("ascii", "replace") or None
    except (OSError, AttributeError):
        return None


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _user() -> str:
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        return str(getuid())
    import getpass  # pragma: no cover - Windows only

    try:  # pragma: no cover - Windows only
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user name at all
        return ""


def namespace_id() -> str:
    """First 16 hex chars of sha256 over boot id, PID-namespace inode and uid.

    Two containers or two hosts sharing one path get different namespace ids (different boot
    or PID namespace); a hostname change does not change it.
    """
    material = "\0".join((_boot_id(), _pid_namespace(), _user()))
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def scope_id(root: Path) -> str:
    """``f"{resolved root}#{namespace_id()}"``: one singleton per scope id and family."""
    return f"{Path(root).resolve()}#{namespace_id()}"
