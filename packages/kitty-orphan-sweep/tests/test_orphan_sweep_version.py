"""The distribution's metadata and the import agree on the version."""

from __future__ import annotations

import re
from importlib.metadata import version

import kitty_orphan_sweep


def test_version_matches_distribution_metadata() -> None:
    assert kitty_orphan_sweep.__version__ == version("kitty-orphan-sweep")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kitty_orphan_sweep.__version__)
