"""The distribution's metadata and the import agree on the version."""

from __future__ import annotations

import re
from importlib.metadata import version

import kitty_daemon_identity


def test_version_matches_distribution_metadata() -> None:
    assert kitty_daemon_identity.__version__ == version("kitty-daemon-identity")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kitty_daemon_identity.__version__)
