"""Exported defaults that refuse assignment (issue 12: "constants that work").

A package that exports its defaults (``SPAWN_TIMEOUT_S``) reads its own private module, so a
caller assigning the exported name would change nothing, silently. ``read_only_constants``
turns that into an ``AttributeError`` saying what does tune the value (an argument) or that it is
fixed. One implementation for every kitty package, here at the bottom of the dependency graph.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping

__all__ = ["read_only_constants"]


def read_only_constants(module_name: str, tuned_by: Mapping[str, str]) -> None:
    """Make ``module_name``'s attributes named in ``tuned_by`` refuse assignment and deletion.

    ``tuned_by`` maps each name to how it is tuned instead (``"pass scan(...,
    connect_timeout=...)"``) or ``"fixed: <what it is>"``; the error quotes it. Call it at the end
    of the package's ``__init__``; other attributes of the module stay assignable.
    """
    module = sys.modules[module_name]
    how_to_tune = dict(tuned_by)
    # dir(), not hasattr(): a lazily exported constant is listed without importing its module.
    missing = sorted(set(how_to_tune) - set(dir(module)))
    if missing:
        raise ValueError(f"{module_name} has no constants {missing} to make read-only")

    class _ReadOnlyDefaults(types.ModuleType):
        def __setattr__(self, name: str, value: object) -> None:
            _refuse(name)
            super().__setattr__(name, value)

        def __delattr__(self, name: str) -> None:
            _refuse(name)
            super().__delattr__(name)

    def _refuse(name: str) -> None:
        how = how_to_tune.get(name)
        if how is not None:
            raise AttributeError(
                f"{module_name}.{name} is a read-only default; assigning it would change "
                f"nothing: {how}"
            )

    module.__class__ = _ReadOnlyDefaults
