"""Scope identity: which daemon root, machine, namespace and user a daemon serves (DID-04)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from kitty_filelock import boot_id

__all__ = ["namespace_id", "scope_id"]


def _boot_id() -> str:
    """The kernel's boot id (kitty-filelock's reader); the hostname only where the OS has none.

    The boot id (not the hostname) is preferred so that renaming the machine does not change
    every scope id and orphan every running daemon.
    """
    return boot_id() or "host:" + socket.gethostname()


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
    import hashlib  # here: loading OpenSSL costs ~2.5 ms; a scan that finds no daemon never asks

    material = "\0".join((_boot_id(), _pid_namespace(), _user()))
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def scope_id(root: Path) -> str:
    """``f"{resolved root}#{namespace_id()}"``: one singleton per scope id and family."""
    return f"{Path(root).resolve()}#{namespace_id()}"
