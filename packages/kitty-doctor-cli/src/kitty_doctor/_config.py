"""Resolve what one run looks at (home, families, ranges) before any section runs.

Configuration problems (a relative `KITTY_HOME`, a malformed `KITTY_SYNC_PORTS`) are fatal for the
whole run (exit 2 with the error envelope) rather than a crashed section: no section could be
trusted with them.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kitty_filelock import installed_version

from ._errors import DoctorConfigError
from ._model import DEFAULT_STUCK_THRESHOLD_S, HomeSource

if TYPE_CHECKING:
    from kitty_daemon_identity import ConfigError

FAMILIES: Final = ("sync", "dashboard")
PACKAGES: Final = (
    "kitty-filelock",
    "kitty-auth-refresh",
    "kitty-daemon-identity",
    "kitty-orphan-sweep",
    "kitty-doctor-cli",
)
UNKNOWN_VERSION: Final = "unknown"


@dataclass(frozen=True, slots=True)
class Config:
    home: Path
    home_source: HomeSource
    families: tuple[str, ...]
    ranges: dict[str, tuple[int, int]]
    stuck_threshold_s: float = DEFAULT_STUCK_THRESHOLD_S
    expected_daemon_version: str | None = None
    login_command: str | None = None
    home_flag: str | None = None
    family_flag: str = "all"
    #: `--expected-daemon-version` when given (remediations repeat it); None for the default.
    expected_version_flag: str | None = None

    @property
    def auth_dir(self) -> Path:
        return self.home / "auth"

    @property
    def session_path(self) -> Path:
        return self.auth_dir / "session.json"

    @property
    def lock_path(self) -> Path:
        return self.auth_dir / "refresh.lock"


def package_versions() -> dict[str, str]:
    """Installed versions of the five packages; `unknown` when metadata is missing (IMP-24)."""
    return {name: installed_version(name) or UNKNOWN_VERSION for name in PACKAGES}


def _from_library(exc: ConfigError) -> DoctorConfigError:
    """The library's variable, value and reason, worded once (its own str repeats the value)."""
    return DoctorConfigError(exc.variable, exc.value, exc.reason)


def _resolve_home(flag: Path | None) -> tuple[Path, HomeSource]:
    if flag is not None:
        home = Path(os.path.expanduser(flag))
        if not home.is_absolute():
            # The same rule as KITTY_HOME: a relative home names a different place from every
            # directory the application runs in, so kitty's processes would not share it.
            raise DoctorConfigError(
                "--home", str(flag), "it must be an absolute path (e.g. /home/you/.kitty)"
            )
        return Path(os.path.abspath(home)), HomeSource.FLAG
    from kitty_daemon_identity import ConfigError, default_home

    try:
        home = default_home()
    except ConfigError as exc:
        raise _from_library(exc) from exc
    source = HomeSource.ENV if os.environ.get("KITTY_HOME") else HomeSource.DEFAULT
    return Path(home), source


_HOME_OPTION: Final = {HomeSource.FLAG: "--home", HomeSource.ENV: "KITTY_HOME"}


def _require_directory(home: Path, source: HomeSource) -> None:
    """The home, and the `auth`/`daemon` directories kitty keeps in it, must each be a directory
    or not exist yet. Anything else (a file, a symlink loop) would crash most sections with
    ENOTDIR/ELOOP and tell the user to report a bug; it is a configuration problem, so say so
    once. Read-only: stat only."""
    option = _HOME_OPTION.get(source, "home")
    for path in (home, home / "auth", home / "daemon"):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue  # a missing entry is fine: kitty creates it
        except OSError as exc:
            problem = f"cannot be used ({exc.strerror or type(exc).__name__})"
        else:
            if stat.S_ISDIR(st.st_mode):
                continue
            problem = "exists but is not a directory"
        where = "it" if path == home else str(path)
        raise DoctorConfigError(
            option, str(home), f"{where} {problem}; move it aside or choose another home"
        )


def _resolve_ranges(families: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    from kitty_daemon_identity import DaemonFamily, RangeConfigError, family_range

    ranges: dict[str, tuple[int, int]] = {}
    for family in families:
        try:
            rng = family_range(DaemonFamily(family))
        except RangeConfigError as exc:
            # Not necessarily this family's variable: the sync range is checked against the
            # dashboard override too, so the library's error says which one is bad.
            raise _from_library(exc) from exc
        ranges[family] = (rng.start, rng.stop)
    return ranges


def resolve_config(
    *,
    home: Path | None,
    family: str,
    stuck_threshold_s: float,
    expected_daemon_version: str | None,
    login_command: str | None,
) -> Config:
    # inf/nan parse as floats but cannot be compared with an age or written as JSON.
    if not math.isfinite(stuck_threshold_s) or stuck_threshold_s < 0:
        raise DoctorConfigError(
            "--stuck-threshold", str(stuck_threshold_s), "give a finite number of seconds >= 0"
        )
    families = FAMILIES if family == "all" else (family,)
    resolved_home, source = _resolve_home(home)
    _require_directory(resolved_home, source)
    if login_command is None:
        login_command = os.environ.get("KITTY_LOGIN_COMMAND") or None
    expected_version_flag = expected_daemon_version
    if expected_daemon_version is None:
        # The same default ensure_daemon uses: the installed kitty-daemon-identity.
        installed = package_versions()["kitty-daemon-identity"]
        expected_daemon_version = None if installed == UNKNOWN_VERSION else installed
    return Config(
        home=resolved_home,
        home_source=source,
        families=families,
        ranges=_resolve_ranges(families),
        stuck_threshold_s=stuck_threshold_s,
        expected_daemon_version=expected_daemon_version,
        login_command=login_command or None,
        home_flag=None if home is None else str(resolved_home),
        family_flag=family,
        expected_version_flag=expected_version_flag,
    )
