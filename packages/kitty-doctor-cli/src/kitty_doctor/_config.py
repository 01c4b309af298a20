"""Resolve what one run looks at (app, home, families, ranges) before any section runs.

The app is an `AppProfile` (kitty-daemon-identity; kitty's own `KITTY` by default): it names the
home and its variable, the families and their range variables, and the words the report uses.
Configuration problems (a relative `KITTY_HOME`, a malformed `KITTY_SYNC_PORTS`) are fatal for the
whole run (exit 2 with the error envelope) rather than a crashed section: no section could be
trusted with them.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kitty_filelock import frozen_dataclass, frozen_field, installed_version

from ._errors import DoctorConfigError
from ._model import DEFAULT_STUCK_THRESHOLD_S, KITTY_BRAND, Brand, HomeSource

if TYPE_CHECKING:
    from kitty_daemon_identity import AppProfile, ConfigError, Family

PACKAGES: Final = (
    "kitty-filelock",
    "kitty-auth-refresh",
    "kitty-daemon-identity",
    "kitty-orphan-sweep",
    "kitty-doctor-cli",
)
UNKNOWN_VERSION: Final = "unknown"


@frozen_dataclass
class Config:
    profile: AppProfile
    home: Path
    home_source: HomeSource
    families: tuple[str, ...]
    ranges: dict[str, tuple[int, int]]
    stuck_threshold_s: float = DEFAULT_STUCK_THRESHOLD_S
    login_command: str | None = None
    home_flag: str | None = None
    family_flag: str = "all"
    #: `--expected-daemon-version` when given (remediations repeat it); None for the default.
    expected_version_flag: str | None = None
    brand: Brand = KITTY_BRAND
    #: The app's finding templates by ID (checked).
    texts: Mapping[str, str] = frozen_field(default_factory=dict)

    def family(self, name: str) -> Family:
        """The profile's bound family called `name`."""
        return self.profile.family(name)

    def expected_version(self, family: str) -> str:
        """What a current daemon of `family` reports: `--expected-daemon-version` if given,
        else that family's own version (what `ensure_daemon` expects)."""
        if self.expected_version_flag is not None:
            return self.expected_version_flag
        return self.family(family).version

    @property
    def daemon_root(self) -> Path:
        return self.profile.daemon_root(self.home)

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


@frozen_dataclass
class DoctorSetup:
    """Whose doctor runs: the app's profile (None: kitty's own), the command its users type,
    the version and package versions it reports, and its own finding texts by ID."""

    profile: AppProfile | None = None
    tool: str = "kitty-doctor"
    version: str | None = None
    packages: Mapping[str, str] | None = None
    texts: Mapping[str, str] = frozen_field(default_factory=dict)

    def tool_version(self) -> str:
        if self.version is not None:
            return self.version
        from . import __version__

        return __version__

    def package_versions(self) -> dict[str, str]:
        """What `--version` and the report list: the app's own, else kitty's five packages."""
        return dict(self.packages) if self.packages is not None else package_versions()


KITTY_SETUP: Final = DoctorSetup()


def brand_of(profile: AppProfile, tool: str | None = None) -> Brand:
    """The words of `profile`'s doctor: its name, its doctor command (or `tool`), its variables."""
    return Brand(
        app=profile.name,
        tool=tool or profile.doctor_command,
        home_env=None if profile.home is not None else profile.home_env,
        env_prefix=profile.env_prefix,
    )


def _from_library(exc: ConfigError) -> DoctorConfigError:
    """The library's variable, value and reason, worded once (its own str repeats the value)."""
    return DoctorConfigError(exc.variable, exc.value, exc.reason)


def _resolve_home(profile: AppProfile, flag: Path | None) -> tuple[Path, HomeSource]:
    if flag is not None:
        home = Path(os.path.expanduser(flag))
        if not home.is_absolute():
            # The same rule as KITTY_HOME: a relative home names a different place from every
            # directory the application runs in, so the app's processes would not share it.
            raise DoctorConfigError(
                "--home",
                str(flag),
                f"it must be an absolute path (e.g. /home/you/.{profile.name})",
            )
        return Path(os.path.abspath(home)), HomeSource.FLAG
    from kitty_daemon_identity import ConfigError

    try:
        home = profile.resolve_home()
    except ConfigError as exc:
        raise _from_library(exc) from exc
    variable = None if profile.home is not None else profile.home_env
    source = HomeSource.ENV if variable and os.environ.get(variable) else HomeSource.DEFAULT
    return Path(home), source


def _require_directory(home: Path, source: HomeSource, home_env: str | None) -> None:
    """The home, and the `auth`/`daemon` directories the app keeps in it, must each be a
    directory or not exist yet. Anything else (a file, a symlink loop) would crash most sections
    with ENOTDIR/ELOOP and tell the user to report a bug; it is a configuration problem, so say
    so once. Read-only: stat only."""
    option = {HomeSource.FLAG: "--home", HomeSource.ENV: home_env}.get(source) or "home"
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


def _resolve_ranges(profile: AppProfile, families: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    from kitty_daemon_identity import RangeConfigError

    ranges: dict[str, tuple[int, int]] = {}
    for family in families:
        try:
            rng = profile.family(family).range()
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
    profile: AppProfile | None = None,
    tool: str | None = None,
    texts: Mapping[str, str] | None = None,
) -> Config:
    """What one run of `profile`'s doctor (default kitty's) looks at; `DoctorConfigError` for
    a value no section could be trusted with."""
    from kitty_daemon_identity import KITTY

    from ._texts import check_texts

    profile = KITTY if profile is None else profile

    # inf/nan parse as floats but cannot be compared with an age or written as JSON.
    if not math.isfinite(stuck_threshold_s) or stuck_threshold_s < 0:
        raise DoctorConfigError(
            "--stuck-threshold", str(stuck_threshold_s), "give a finite number of seconds >= 0"
        )
    names = tuple(f.name for f in profile.families)
    if family != "all" and family not in names:
        raise DoctorConfigError(
            "--family",
            family,
            f"use one of {', '.join(names)} or all (the {profile.name} families)",
        )
    families = names if family == "all" else (family,)
    brand = brand_of(profile, tool)
    resolved_home, source = _resolve_home(profile, home)
    _require_directory(resolved_home, source, brand.home_env)
    if login_command is None:
        login_command = os.environ.get(brand.login_env) or profile.login_command
    return Config(
        profile=profile,
        home=resolved_home,
        home_source=source,
        families=families,
        ranges=_resolve_ranges(profile, families),
        stuck_threshold_s=stuck_threshold_s,
        login_command=login_command or None,
        home_flag=None if home is None else str(resolved_home),
        family_flag=family,
        expected_version_flag=expected_daemon_version,
        brand=brand,
        texts=check_texts(texts or {}),
    )
