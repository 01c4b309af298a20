"""Issue 15: importing a kitty package is cheap, and every public name still resolves.

Each package's `__init__` hands its public names to kitty-filelock's `lazy_exports`, so
`import pkg` runs none of pkg's modules and `pkg.X` loads exactly the module that defines X.
Checked for the installed packages together, each in a fresh interpreter (this process has long
since imported them all).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

#: What `import pkg` may run of pkg itself (kitty-daemon-identity reads its version eagerly:
#: `__version__` is a plain attribute everywhere).
EAGER = {
    "kitty_filelock": [
        "kitty_filelock._exports",
        "kitty_filelock._installed",
        "kitty_filelock._readonly",
    ],
    "kitty_auth_refresh": [],
    "kitty_daemon_identity": ["kitty_daemon_identity._version"],
    "kitty_orphan_sweep": [],
    "kitty_doctor": [],
}

PROBE = """
import json, sys
import {package}
print(json.dumps(sorted(m for m in sys.modules if m.startswith("{package}."))))
"""


@pytest.mark.parametrize("package", sorted(EAGER))
def test_import_runs_only_the_eager_modules(package: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(package=package)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert json.loads(out) == EAGER[package]


@pytest.mark.parametrize("package", sorted(EAGER))
def test_every_public_name_is_listed_and_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert name in dir(module), name
        assert getattr(module, name) is not None, name
