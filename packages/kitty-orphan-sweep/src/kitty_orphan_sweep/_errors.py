"""Errors of kitty-orphan-sweep.

```
KittySweepError(Exception)
├── SweepGuardError(KittySweepError, RuntimeError)   record, guard   (nothing was signalled)
├── NoFreePortError(KittySweepError)                 family, range
├── DaemonStartError(KittySweepError)                exit_code, log_tail
└── DaemonUnresponsiveError(KittySweepError)         family, pid, port
```

Messages never contain a token or the scope key; every error pickles (its constructor
arguments are kept in ``args``).
"""

from __future__ import annotations

from typing import Any


class KittySweepError(Exception):
    """Root of every error this package raises on purpose."""


class SweepGuardError(KittySweepError, RuntimeError):
    """A record handed to `sweep` violates a static guard; raised before any action."""

    def __init__(self, record: Any, guard: str) -> None:
        super().__init__(record, guard)
        self.record = record
        self.guard = guard

    def __str__(self) -> str:
        port = getattr(self.record, "port", "?")
        pid = getattr(self.record, "pid", "?")
        return (
            f"refusing to sweep: record for port {port} (pid {pid}) violates guard "
            f"'{self.guard}'; nothing was signalled. Pass only records produced by scan() "
            "for the same family and home."
        )


class NoFreePortError(KittySweepError):
    """Every port of the family range is taken (after reaping safe orphans)."""

    def __init__(
        self,
        family: str,
        range_: str,
        variable: str | None = None,
        doctor_command: str = "kitty-doctor",
    ) -> None:
        super().__init__(family, range_, variable, doctor_command)
        self.family = family
        self.range = range_
        self.variable = variable or f"KITTY_{family.upper()}_PORTS"
        self.doctor_command = doctor_command

    def __str__(self) -> str:
        return (
            f"no free port for the {self.family} daemon in range {self.range}; run "
            f"`{self.doctor_command} --family {self.family}` to see what holds them, or set "
            f"{self.variable} to another range"
        )


class DaemonStartError(KittySweepError):
    """The spawned daemon exited or never became healthy; carries the tail of its log."""

    def __init__(self, message: str, exit_code: int | None, log_tail: str) -> None:
        super().__init__(message, exit_code, log_tail)
        self.message = message
        self.exit_code = exit_code
        self.log_tail = log_tail

    def __str__(self) -> str:
        code = "still running" if self.exit_code is None else f"exit code {self.exit_code}"
        tail = self.log_tail.rstrip() or "(log is empty)"
        return f"{self.message} ({code}); last lines of the daemon log:\n{tail}"


class DaemonUnresponsiveError(KittySweepError):
    """The recorded singleton is alive and holds its port but its health did not answer.

    A second daemon is never spawned beside a live singleton (that would break the singleton);
    a timeout is never kill authority either. The caller retries later or the operator looks.
    """

    def __init__(
        self, family: str, pid: int, port: int, doctor_command: str = "kitty-doctor"
    ) -> None:
        super().__init__(family, pid, port, doctor_command)
        self.family = family
        self.pid = pid
        self.port = port
        self.doctor_command = doctor_command

    def __str__(self) -> str:
        return (
            f"the {self.family} daemon (pid {self.pid}, port {self.port}) is alive and holds its "
            "port but did not answer its health check in time; not starting a second one. Try "
            f"again shortly, or run `{self.doctor_command} --family {self.family}` to see why it "
            "is stuck"
        )
