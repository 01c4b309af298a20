"""The distribution's metadata and the import agree on the version."""

from __future__ import annotations

import re
from importlib.metadata import version

import kitty_auth_refresh


def test_version_matches_distribution_metadata() -> None:
    assert kitty_auth_refresh.__version__ == version("kitty-auth-refresh")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kitty_auth_refresh.__version__)
