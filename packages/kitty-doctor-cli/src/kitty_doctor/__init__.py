"""kitty-doctor-cli: the `kitty-doctor` command, and the doctor as a library for any CLI.

One offline, read-only command that explains an application's local state — session, storage,
refresh lock, daemons and orphans — with stable finding IDs (KD101-KD901), exact remediation
commands and opt-in repairs (`--reset`, `--unstick-lock`). `--json` prints one document validated
by the JSON Schema shipped as `kitty_doctor/schema/doctor-report.schema.json`.

Embedding it (issue 13), for an app's `AppProfile` (kitty-daemon-identity):

    from kitty_doctor import doctor_app
    auth.add_typer(doctor_app(ACME, command="acme auth doctor"), name="doctor")

or as calls: `build_report(ACME)` (the typed `Report`, the same data as `--json`, whose document
is `report_document(report)`), `render_report(report, console)`, `run_repairs(ACME, reset=True)`.
`FINDING_TEXTS` holds each finding's default template; `texts={"KD101": ...}` re-words one.

This module stays import-light: the CLI machinery loads only when it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kitty_filelock import installed_version, lazy_exports

# Read cheaply by kitty-filelock: importing importlib.metadata would cost more than this package.
__version__: str = installed_version("kitty-doctor-cli") or "0.0.0+unknown"

if TYPE_CHECKING:
    from ._cli import doctor_app
    from ._document import report_document
    from ._embed import Candidate, build_report, render_report, run_repairs
    from ._errors import DoctorConfigError, KittyDoctorError
    from ._exit import ExitCode
    from ._model import Brand, Finding, Remediation, Repairs, Report, Severity
    from ._texts import FINDING_TEXTS, check_texts

__all__ = [
    "FINDING_TEXTS",
    "Brand",
    "Candidate",
    "DoctorConfigError",
    "ExitCode",
    "Finding",
    "KittyDoctorError",
    "Remediation",
    "Repairs",
    "Report",
    "Severity",
    "__version__",
    "build_report",
    "check_texts",
    "doctor_app",
    "render_report",
    "report_document",
    "run_repairs",
]

#: Where each public name lives; loaded on first use, so `import kitty_doctor` stays cheap.
_HOMES = {
    "doctor_app": "_cli",
    "report_document": "_document",
    "Candidate": "_embed",
    "build_report": "_embed",
    "render_report": "_embed",
    "run_repairs": "_embed",
    "DoctorConfigError": "_errors",
    "KittyDoctorError": "_errors",
    "ExitCode": "_exit",
    "Brand": "_model",
    "Finding": "_model",
    "Remediation": "_model",
    "Repairs": "_model",
    "Report": "_model",
    "Severity": "_model",
    "FINDING_TEXTS": "_texts",
    "check_texts": "_texts",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
