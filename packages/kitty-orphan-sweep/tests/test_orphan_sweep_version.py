"""The distribution's metadata and the import agree on the version; the import is light."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import kitty_orphan_sweep

PACKAGE = kitty_orphan_sweep.__name__


def test_version_matches_distribution_metadata() -> None:
    assert kitty_orphan_sweep.__version__ == version("kitty-orphan-sweep")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kitty_orphan_sweep.__version__)


def test_import_runs_no_module_of_the_package_and_every_public_name_resolves() -> None:
    """The import is cheap (issue 15): each public name loads its own module on first use."""
    loaded = f"sorted(m for m in sys.modules if m.startswith('{PACKAGE}.'))"
    probe = f"import sys, {PACKAGE}; print({loaded})"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
    for name in kitty_orphan_sweep.__all__:
        assert name in dir(kitty_orphan_sweep), name
        assert getattr(kitty_orphan_sweep, name) is not None, name
