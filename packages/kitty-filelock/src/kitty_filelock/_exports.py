"""``lazy_exports``: a package's public names, each loaded from its own module on first use.

A short command such as ``kitty-doctor --json`` imports a handful of names from each kitty package.
With eager ``from ._x import X`` lines in every ``__init__``, that handful costs the whole package:
every module body runs and every dataclass and enum in it is built (about half of that command's
start-up before this). A package's ``__init__`` instead names where each public name lives and
hands this module's pair of hooks to the interpreter (PEP 562): ``import pkg`` stays cheap, and
``pkg.X`` or ``from pkg import X`` imports exactly ``pkg._x``, then behaves as an ordinary
attribute (it is cached in the package's namespace).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module


def lazy_exports(
    module_name: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` hooks for package ``module_name``.

    ``homes`` maps each public name to the submodule that defines it (``{"Session": "_session"}``).
    Use it at the end of the package's ``__init__``, with the same names imported under
    ``TYPE_CHECKING`` for type checkers:

        __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
    """
    where = dict(homes)
    package = sys.modules[module_name]
    unknown = sorted(set(where) - set(getattr(package, "__all__", where)))
    if unknown:
        raise ValueError(f"{module_name}: lazy names {unknown} are missing from __all__")

    def __getattr__(name: str) -> object:
        home = where.get(name)
        if home is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(import_module(f"{module_name}.{home}"), name)
        # Cached in the package's namespace (not setattr: a package may refuse assignment of its
        # read-only constants), so the next access is an ordinary attribute lookup.
        vars(package)[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(package), *where})

    return __getattr__, __dir__
