"""read_only_constants: an exported default refuses assignment and says what tunes it."""

from __future__ import annotations

import sys
import types

import pytest

import kitty_filelock
from kitty_filelock import read_only_constants


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.LIMIT = 5  # type: ignore[attr-defined]
    module.other = 1  # type: ignore[attr-defined]
    sys.modules[name] = module
    return module


def test_assignment_and_deletion_are_refused_with_the_way_to_tune() -> None:
    module = _module("_readonly_probe")
    try:
        read_only_constants("_readonly_probe", {"LIMIT": "pass run(limit=...)"})
        with pytest.raises(
            AttributeError, match=r"_readonly_probe\.LIMIT .*pass run\(limit=\.\.\.\)"
        ):
            module.LIMIT = 6  # type: ignore[attr-defined]
        with pytest.raises(AttributeError, match="read-only default"):
            del module.LIMIT
        assert module.LIMIT == 5
        module.other = 2  # type: ignore[attr-defined]  # names not listed stay assignable
        assert module.other == 2
    finally:
        del sys.modules["_readonly_probe"]


def test_a_name_the_module_lacks_is_a_programming_error() -> None:
    _module("_readonly_probe2")
    try:
        with pytest.raises(ValueError, match="MISSING"):
            read_only_constants("_readonly_probe2", {"MISSING": "fixed"})
    finally:
        del sys.modules["_readonly_probe2"]


def test_kitty_filelocks_tolerance_is_read_only() -> None:
    with pytest.raises(AttributeError, match="START_TIME_TOLERANCE_S is a read-only default"):
        kitty_filelock.START_TIME_TOLERANCE_S = 2.0  # type: ignore[misc]
    assert kitty_filelock.START_TIME_TOLERANCE_S == 1.0
