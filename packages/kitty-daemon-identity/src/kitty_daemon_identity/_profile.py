"""The app profile: one frozen value naming everything of an application that kitty shows or reads.

kitty is embedded by command-line applications other than kitty (issue 13). Everything that used
to be kitty's brand or layout — the home and its environment variable, the ``*_PORTS`` range
variables, the argv markers, the HTTP ``Server`` name, the daemon's port variable, the commands a
remediation names, the daemon families — is a field here. ``KITTY`` is kitty's own profile and
reproduces the historical names and file layout exactly; every public entry point defaults to it.

A ``Family`` is built unattached and then bound to its profile by ``AppProfile``
(``family.profile``), so one object carries all a scanner, spawner, server or doctor needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from kitty_filelock import frozen_dataclass, frozen_field, frozen_replace

from ._constants import DAEMON_PROTOCOL_VERSION, DEFAULT_ENTRY_SIGNATURES
from ._errors import RangeConfigError
from ._home import resolve_home
from ._ports import PortRange
from ._version import __version__

__all__ = [
    "DASHBOARD_RANGE",
    "KITTY",
    "SYNC_RANGE",
    "AppProfile",
    "Family",
    "as_family",
    "daemon_root",
    "default_home",
    "valid_family_name",
]

_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,31}")
_ENV_PREFIX: Final = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_FIELD: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Extra health fields are public to anyone on the machine: names that say "secret" are refused.
_SECRET_WORDS: Final = ("token", "secret", "key", "password", "credential", "cookie", "auth")
_MAX_VERSION_CHARS: Final = 64


def valid_family_name(value: object) -> bool:
    """True for a well-formed app or family name (1-32 of ``a-z0-9-``, a letter first)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _check_name(kind: str, value: str) -> None:
    if not valid_family_name(value):
        raise ValueError(
            f"{kind} {value!r} is invalid: use 1-32 lowercase letters, digits and '-', "
            "starting with a letter (e.g. 'acme')"
        )


@frozen_dataclass
class Family:
    """One kind of daemon of an app, with its own port range; cleanup never crosses families.

    ``version`` is what a current daemon of this family reports (``ensure_daemon`` replaces one
    that reports another); ``entry_signatures`` are argv elements (or their basenames) that mark a
    daemon started before markers existed; ``health_fields`` names the extra health fields the
    app's daemon may serve (under ``"extra"``; never secrets). ``files_prefix``/``log_name`` name
    the family's files in the daemon root (default ``<name>-state.json``, ``<name>.log``).

    Build it unattached and pass it to ``AppProfile(families=...)``; use the profile's bound copy
    (``profile.family(name)``), which knows its profile.
    """

    name: str
    ports: PortRange
    version: str
    protocol_version: int = DAEMON_PROTOCOL_VERSION
    entry_signatures: tuple[str, ...] = ()
    health_fields: tuple[str, ...] = ()
    files_prefix: str | None = None
    log_name: str | None = None
    profile: AppProfile | None = frozen_field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_name("family name", self.name)
        if not isinstance(self.ports, PortRange):
            raise ValueError(f"family {self.name!r}: ports must be a PortRange, got {self.ports!r}")
        if not isinstance(self.version, str) or not 0 < len(self.version) <= _MAX_VERSION_CHARS:
            raise ValueError(
                f"family {self.name!r}: version must be 1-{_MAX_VERSION_CHARS} characters, "
                f"got {self.version!r}"
            )
        if isinstance(self.protocol_version, bool) or not isinstance(self.protocol_version, int):
            raise ValueError(f"family {self.name!r}: protocol_version must be an int")
        object.__setattr__(self, "entry_signatures", tuple(self.entry_signatures))
        object.__setattr__(self, "health_fields", tuple(self.health_fields))
        for name in self.health_fields:
            if not _FIELD.fullmatch(name) or any(w in name for w in _SECRET_WORDS):
                raise ValueError(
                    f"family {self.name!r}: health field {name!r} is invalid: use lowercase "
                    "snake_case, and never a name for a secret (health is readable by anyone "
                    "on the machine)"
                )

    @property
    def app(self) -> AppProfile:
        """The profile this family belongs to; ``ValueError`` for a family not built into one."""
        if self.profile is None:
            raise ValueError(
                f"family {self.name!r} is not part of an AppProfile: pass it in "
                "AppProfile(families=...) and use profile.family(name)"
            )
        return self.profile

    @property
    def range_variable(self) -> str:
        """The environment variable that overrides this family's range, e.g. ``ACME_SYNC_PORTS``."""
        return f"{self.app.env_prefix}_{self.name.upper().replace('-', '_')}_PORTS"

    def configured_range(self, environ: Mapping[str, str] | None = None) -> PortRange:
        """The range after this family's own override (no overlap check)."""
        env = os.environ if environ is None else environ
        text = env.get(self.range_variable, "")
        if not text.strip():
            return self.ports
        try:
            return PortRange.parse(text)
        except ValueError as exc:
            raise RangeConfigError(
                self.range_variable, text, f"{exc}; unset it or fix the range"
            ) from None

    def range(self, environ: Mapping[str, str] | None = None) -> PortRange:
        """The family's port range, re-reading the environment at every call (DID-02).

        Raises ``RangeConfigError`` if an override is malformed or overlaps another family of
        the SAME profile (overlapping ranges would let one family's cleanup reach the other's
        daemons); other apps' ranges are not this profile's business.
        """
        own = self.configured_range(environ)
        for other in self.app.families:
            if other.name == self.name:
                continue
            theirs = other.configured_range(environ)
            if own.overlaps(theirs):
                env = os.environ if environ is None else environ
                raise RangeConfigError(
                    self.range_variable,
                    env.get(self.range_variable, str(own)),
                    f"range {own} overlaps the {other.name} range {theirs}; choose disjoint "
                    f"ranges for {self.range_variable} and {other.range_variable}",
                )
        return own

    def _prefix(self) -> str:
        return f"{self.name}-" if self.files_prefix is None else self.files_prefix

    def state_path(self, root: Path | str) -> Path:
        return Path(root) / f"{self._prefix()}state.json"

    def spawn_lock_path(self, root: Path | str) -> Path:
        return Path(root) / f"{self._prefix()}spawn.lock"

    def log_path(self, root: Path | str) -> Path:
        """The daemon's log; the rotated backup appends ``.1``."""
        return Path(root) / (self.log_name or f"{self.name}.log")


@frozen_dataclass
class AppProfile:
    """Everything of an application kitty shows, reads or writes; build it once, pass it around.

    Derived defaults (for ``name="acme"``): ``env_prefix`` ``ACME``; home ``$ACME_HOME``, else
    ``home_default``, else ``~/.acme`` (``%LOCALAPPDATA%\\acme`` on Windows); ``doctor_command``
    ``acme-doctor``; ``marker_prefix`` ``--acme-daemon-`` (argv ``--acme-daemon-root=<root>``);
    ``server_name`` ``acme-daemon``; the daemon learns its port from ``ACME_DAEMON_PORT``.
    ``home`` pins the home outright (no environment lookup). ``login_command`` is what a
    remediation tells a logged-out user to run (None: "log in again with your application").
    """

    name: str
    families: tuple[Family, ...]
    env_prefix: str = ""
    home: Path | None = None
    home_env: str | None = ""
    home_default: Path | None = None
    login_command: str | None = None
    doctor_command: str = ""
    marker_prefix: str = ""
    server_name: str = ""

    def __post_init__(self) -> None:
        _check_name("app name", self.name)
        prefix = self.env_prefix or self.name.upper().replace("-", "_")
        if not _ENV_PREFIX.fullmatch(prefix):
            raise ValueError(f"env_prefix {prefix!r} is invalid: use A-Z, 0-9 and '_' (e.g. ACME)")
        defaults = {
            "env_prefix": prefix,
            "home_env": f"{prefix}_HOME" if self.home_env == "" else self.home_env,
            "doctor_command": self.doctor_command or f"{self.name}-doctor",
            "marker_prefix": self.marker_prefix or f"--{self.name}-daemon-",
            "server_name": self.server_name or f"{self.name}-daemon",
        }
        for key, value in defaults.items():
            object.__setattr__(self, key, value)
        if not (self.marker_prefix.startswith("--") and self.marker_prefix.endswith("-")):
            raise ValueError(f"marker_prefix {self.marker_prefix!r} must look like --acme-daemon-")
        if self.home is not None and not Path(self.home).is_absolute():
            raise ValueError(f"home {str(self.home)!r} must be an absolute path")
        families = tuple(self.families)
        if not families:
            raise ValueError(f"app {self.name!r} needs at least one daemon family")
        names = [f.name for f in families]
        if len(set(names)) != len(names):
            raise ValueError(f"app {self.name!r}: family names repeat: {names}")
        for i, one in enumerate(families):
            for other in families[i + 1 :]:
                if one.ports.overlaps(other.ports):
                    raise ValueError(
                        f"app {self.name!r}: the {one.name} range {one.ports} overlaps the "
                        f"{other.name} range {other.ports}"
                    )
        # Bind each family to this profile (a fresh copy: a Family value may be shared).
        bound = tuple(frozen_replace(f, profile=None) for f in families)
        for f in bound:
            object.__setattr__(f, "profile", self)
        object.__setattr__(self, "families", bound)

    # -- names derived from the profile -------------------------------------------------------
    @property
    def root_marker_prefix(self) -> str:
        """``--kitty-daemon-root=``: kill authority when it names the caller's daemon root."""
        return f"{self.marker_prefix}root="

    @property
    def exec_marker_prefix(self) -> str:
        """``--kitty-daemon-exec=``: evidence only (which interpreter the spawner used)."""
        return f"{self.marker_prefix}exec="

    @property
    def port_variable(self) -> str:
        """The environment variable a spawned daemon reads its port from (``KITTY_DAEMON_PORT``)."""
        return f"{self.env_prefix}_DAEMON_PORT"

    @property
    def login_hint(self) -> str:
        """The remediation for a missing or dead login."""
        if self.login_command:
            return f"log in again: {self.login_command}"
        return "log in again with your application"

    # -- lookups --------------------------------------------------------------------------------
    def family(self, name: str) -> Family:
        """The bound family called ``name``; ``ValueError`` listing the known names otherwise."""
        for f in self.families:
            if f.name == str(name):
                return f
        known = ", ".join(f.name for f in self.families)
        raise ValueError(f"unknown daemon family {name!r} for {self.name}; use one of {known}")

    def resolve_home(self) -> Path:
        """The home: ``home``, else ``$home_env``, else the default (``ConfigError`` if bad)."""
        if self.home is not None:
            return Path(self.home)
        return resolve_home(self.home_env, self.name, self.home_default)

    def daemon_root(self, home: Path | str | None = None) -> Path:
        """``(home / "daemon").resolve()``; the resolved path is the root-marker value."""
        base = self.resolve_home() if home is None else Path(home)
        return (base / "daemon").resolve()

    def __repr__(self) -> str:
        return f"AppProfile(name={self.name!r}, families={[f.name for f in self.families]})"


SYNC_RANGE: Final = PortRange(9400, 9450)
DASHBOARD_RANGE: Final = PortRange(9237, 9337)

KITTY: Final = AppProfile(
    name="kitty",
    families=(
        # SPEC §0.3: the sync family keeps the historical un-prefixed file names.
        Family(
            "sync",
            SYNC_RANGE,
            __version__,
            entry_signatures=DEFAULT_ENTRY_SIGNATURES,
            files_prefix="",
            log_name="daemon.log",
        ),
        Family(
            "dashboard",
            DASHBOARD_RANGE,
            __version__,
            entry_signatures=DEFAULT_ENTRY_SIGNATURES,
            files_prefix="dashboard-",
            log_name="dashboard.log",
        ),
    ),
    home_env="KITTY_HOME",
    doctor_command="kitty-doctor",
)


def as_family(family: Family | str, profile: AppProfile | None = None) -> Family:
    """A bound ``Family`` for a family object or a family name of ``profile`` (default ``KITTY``).

    ``DaemonFamily.SYNC`` is a ``str``, so kitty's historical enum keeps working everywhere.
    """
    if isinstance(family, Family):
        family.app  # noqa: B018 - raises the clear error for an unattached family
        return family
    return (profile or KITTY).family(family)


def default_home() -> Path:
    """kitty's home: ``$KITTY_HOME`` if set and non-empty, else ``~/.kitty`` (see ``KITTY``)."""
    return KITTY.resolve_home()


def daemon_root(home: Path | None = None) -> Path:
    """kitty's daemon root ``(home / "daemon").resolve()``; home defaults to ``default_home()``."""
    return KITTY.daemon_root(home)
