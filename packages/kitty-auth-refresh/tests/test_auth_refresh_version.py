"""The distribution's metadata and the import agree on the version; the import is light."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import kitty_auth_refresh

PACKAGE = kitty_auth_refresh.__name__


def test_version_matches_distribution_metadata() -> None:
    assert kitty_auth_refresh.__version__ == version("kitty-auth-refresh")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kitty_auth_refresh.__version__)


def test_import_runs_no_module_of_the_package_and_every_public_name_resolves() -> None:
    """The import is cheap (issue 15): each public name loads its own module on first use."""
    loaded = f"sorted(m for m in sys.modules if m.startswith('{PACKAGE}.'))"
    probe = f"import sys, {PACKAGE}; print({loaded})"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
    for name in kitty_auth_refresh.__all__:
        assert name in dir(kitty_auth_refresh), name
        assert getattr(kitty_auth_refresh, name) is not None, name
