"""The spawn contract, daemon side: what a daemon started by ``ensure_daemon`` is told, and how.

A spawner (kitty-orphan-sweep's ``ensure_daemon``) runs the app's daemon command with

* the profile's two argv markers appended (``--acme-daemon-root=<resolved daemon root>`` and
  ``--acme-daemon-exec=<resolved interpreter>``): the root is where the daemon belongs, and the
  marker is what lets a cleaner later prove the process is this app's daemon of that root;
* the chosen port in ``<PREFIX>_DAEMON_PORT`` (``ACME_DAEMON_PORT``) and the home in the
  profile's home variable (``ACME_HOME``).

The daemon binds exactly that port on 127.0.0.1 and, when it cannot (someone took it between the
spawner's check and the bind), exits with ``EXIT_PORT_TAKEN`` (3): the spawner then retries on
another port instead of reporting a failure. ``daemon_launch`` reads the contract;
``serve_daemon`` is the whole daemon main for an app that only adds routes.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from kitty_filelock import frozen_dataclass

from ._constants import LOOPBACK
from ._errors import ConfigError, PortTaken, UsageError
from ._family import DaemonFamily
from ._markers import parse_markers, strip_markers
from ._profile import Family, as_family
from ._state import ensure_scope_key

if TYPE_CHECKING:
    from ._server import DaemonServer

__all__ = [
    "EXIT_PORT_TAKEN",
    "DaemonLaunch",
    "bind_first",
    "daemon_launch",
    "parse_port",
    "serve_daemon",
]

_T = TypeVar("_T")

#: Exit status of a spawned daemon that could not bind its port: a race, not a failure.
EXIT_PORT_TAKEN: Final = 3
# "Address in use"; Windows reports an excluded or exclusively-bound port as WSAEACCES (10013).
_IN_USE: Final = frozenset(
    {errno.EADDRINUSE, 10048, 10013} if os.name == "nt" else {errno.EADDRINUSE}
)


def parse_port(text: str) -> int:
    """A port number 1..65535 from text; ``ValueError`` saying why not."""
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise ValueError(f"{text!r} is outside 1..65535")
    return value


@frozen_dataclass
class DaemonLaunch:
    """What the spawner told this daemon: its family, root, port (None: pick one) and own args."""

    family: Family
    root: Path
    port: int | None
    args: tuple[str, ...]


def daemon_launch(
    family: DaemonFamily | Family | str,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    root: Path | None = None,
) -> DaemonLaunch:
    """Read the spawn contract from argv (default ``sys.argv[1:]``) and the environment.

    The root comes from the root marker, else ``root``, else the profile's daemon root; the port
    from ``<PREFIX>_DAEMON_PORT`` (None when unset). ``args`` is argv without the markers, for
    the daemon's own option parser. Raises ``UsageError`` (exit 2) saying what is wrong.
    """
    fam = as_family(family)
    profile = fam.app
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    markers = parse_markers(argv, profile=profile)
    if markers.conflict:
        raise UsageError(f"conflicting {profile.root_marker_prefix} markers; pass exactly one")
    if markers.root_present:
        if not markers.root:
            raise UsageError(
                f"empty {profile.root_marker_prefix} marker; pass the resolved daemon root"
            )
        chosen = Path(markers.root)
    elif root is not None:
        chosen = Path(root)
    else:
        try:
            chosen = profile.daemon_root()
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    port: int | None = None
    raw = env.get(profile.port_variable, "")
    if raw:
        try:
            port = parse_port(raw)
        except ValueError as exc:
            raise UsageError(f"{profile.port_variable}={raw!r} is invalid: {exc}") from None
    return DaemonLaunch(fam, chosen.resolve(), port, tuple(strip_markers(argv, profile=profile)))


def bind_first(family: Family, port: int | None, bind: Callable[[int], _T]) -> _T:
    """``bind(port)``, or the first port of the family's range that binds; else ``PortTaken``."""
    candidates = [port] if port is not None else list(family.range())
    for candidate in candidates:
        try:
            return bind(candidate)
        except OSError as exc:
            if exc.errno not in _IN_USE:
                raise
            if port is not None:
                raise PortTaken(f"port {candidate} on {LOOPBACK} is already in use") from None
    raise PortTaken(f"no free port in the {family.name} range {family.range()} on {LOOPBACK}")


def serve_daemon(
    family: DaemonFamily | Family | str,
    *,
    setup: Callable[[DaemonServer], None] | None = None,
    argv: Sequence[str] | None = None,
    **server_options: Any,
) -> int:
    """A whole daemon main: read the launch, bind, ``setup(server)`` (add routes), serve.

    Returns the exit code for ``sys.exit``: 0 stopped (shutdown request, SIGTERM/SIGINT or
    self-retirement), 2 bad launch, 3 ``EXIT_PORT_TAKEN``. ``server_options`` go to
    ``DaemonServer`` (``busy_probe``, ``idle_limit_s`` …). Errors are printed to stderr with the
    app's server name, never a secret.
    """
    from ._server import DaemonServer  # the HTTP stack only for a process that serves

    fam = as_family(family)
    name = fam.app.server_name
    try:
        launch = daemon_launch(fam, argv)
        ensure_scope_key(launch.root)
        server = bind_first(
            fam, launch.port, lambda p: DaemonServer(fam, p, launch.root, **server_options)
        )
    except UsageError as exc:
        sys.stderr.write(f"{name}: error: {exc}\n")
        return 2
    except PortTaken as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        return EXIT_PORT_TAKEN
    if setup is not None:
        setup(server)
    if threading.current_thread() is threading.main_thread():
        # shutdown() must not run on the serving thread: hand the signal to a helper thread.
        def on_signal(signum: int, frame: object) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        server.serve_forever()
    finally:
        server.close()
    return 0
