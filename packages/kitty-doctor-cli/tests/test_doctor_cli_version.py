"""The distribution's metadata and the import agree on the version."""

from __future__ import annotations

import re
from importlib.metadata import version

import kitty_doctor


def test_version_matches_distribution_metadata() -> None:
    assert kitty_doctor.__version__ == version("kitty-doctor-cli")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kitty_doctor.__version__)
