"""Backend dispatch, decided once by capability (``hasattr``), never by OS name.

``fcntl.flock`` available -> ``flock`` (and ``fcntl`` for network filesystems);
else ``msvcrt.locking`` -> ``msvcrt``; else no backend, and constructing a lock raises
``UnsupportedPlatformError`` (importing the package never fails).
"""

from __future__ import annotations

from typing import Final, Protocol

from ._errors import UnsupportedPlatformError


class LockBackend(Protocol):
    """The two hooks a platform implements; everything else is shared."""

    @property
    def name(self) -> str: ...

    def try_lock(self, fd: int, *, shared: bool = False) -> bool:
        """Take the lock without blocking: True if taken, False on contention; else raise."""
        ...

    def unlock(self, fd: int) -> None:
        """Drop the lock held through ``fd``."""
        ...


MODES: Final = ("auto", "fcntl", "flock", "msvcrt")

_BACKENDS: dict[str, LockBackend] = {}
try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]  # absent module on this platform
if _fcntl is not None and hasattr(_fcntl, "flock"):
    from ._posix import FcntlBackend, FlockBackend

    _BACKENDS["flock"] = FlockBackend()
    _BACKENDS["fcntl"] = FcntlBackend()
else:  # pragma: no cover - Windows or exotic platforms
    try:
        import msvcrt as _msvcrt
    except ImportError:
        _msvcrt = None  # type: ignore[assignment]  # absent module on this platform
    if _msvcrt is not None and hasattr(_msvcrt, "locking"):
        from ._windows import MsvcrtBackend

        _BACKENDS["msvcrt"] = MsvcrtBackend()


def available_modes() -> tuple[str, ...]:
    """Concrete modes usable on this platform, e.g. ``("fcntl", "flock")``."""
    return tuple(sorted(_BACKENDS))


def auto_mode(network: bool) -> str:
    """The mode ``auto`` resolves to for a local or network filesystem ("none" if unsupported)."""
    if "flock" in _BACKENDS:
        return "fcntl" if network else "flock"
    if "msvcrt" in _BACKENDS:  # pragma: no cover - Windows
        return "msvcrt"
    return "none"  # pragma: no cover - unsupported platform


def check_mode(mode: str) -> None:
    """Validate a requested mode: ValueError if unknown, UnsupportedPlatformError if unavailable."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "auto":
        if not _BACKENDS:  # pragma: no cover - unsupported platform
            raise UnsupportedPlatformError(
                "no OS file lock is available here (neither fcntl.flock nor msvcrt.locking); "
                "kitty-filelock supports Linux, macOS, other POSIX systems and Windows"
            )
        return
    if mode not in _BACKENDS:
        raise UnsupportedPlatformError(
            f"lock mode {mode!r} is not available on this platform; "
            f"use mode='auto' or one of {', '.join(available_modes())}"
        )


def backend(mode: str) -> LockBackend:
    """The backend object for a concrete, available mode."""
    return _BACKENDS[mode]
