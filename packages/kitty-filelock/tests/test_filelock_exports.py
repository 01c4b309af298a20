"""lazy_exports: a package's public names load from their own module on first use (issue 15).

`kitty-doctor --json` needs a handful of names from each kitty package; an eager `__init__`
made it pay for every module of every package.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import kitty_filelock

INIT = """
from kitty_filelock import lazy_exports, read_only_constants

__all__ = ["LIMIT", "Thing", "helper"]
_HOMES = {"LIMIT": "_limits", "Thing": "_thing", "helper": "_thing"}
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
read_only_constants(__name__, {"LIMIT": "pass run(limit=...)"})
"""


@pytest.fixture
def lazypkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text(INIT)
    (package / "_limits.py").write_text("LIMIT = 5\n")
    (package / "_thing.py").write_text("class Thing: ...\n\ndef helper() -> int:\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazypkg"
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        del sys.modules[name]


def _loaded(prefix: str) -> set[str]:
    return {m for m in sys.modules if m.startswith(prefix + ".")}


def test_a_name_loads_its_own_module_only_and_is_then_an_attribute(lazypkg: str) -> None:
    import lazypkg as pkg  # type: ignore[import-not-found]

    # read_only_constants found LIMIT in dir() without importing it.
    assert _loaded(lazypkg) == set()
    from lazypkg import helper

    assert helper() == 7
    assert _loaded(lazypkg) == {"lazypkg._thing"}
    assert pkg.Thing is sys.modules["lazypkg._thing"].Thing
    assert "Thing" in vars(pkg)  # cached: the next access never reaches the hook
    assert pkg.LIMIT == 5
    assert _loaded(lazypkg) == {"lazypkg._thing", "lazypkg._limits"}


def test_dir_lists_unloaded_names_and_a_lazy_constant_stays_read_only(lazypkg: str) -> None:
    import lazypkg as pkg

    assert {"LIMIT", "Thing", "helper"} <= set(dir(pkg))
    with pytest.raises(AttributeError, match=r"read-only default.*pass run\(limit=\.\.\.\)"):
        pkg.LIMIT = 6
    assert pkg.LIMIT == 5


def test_an_unknown_name_is_the_usual_attribute_error(lazypkg: str) -> None:
    import lazypkg as pkg

    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'nope'"):
        _ = pkg.nope
    with pytest.raises(ImportError, match="nope"):
        exec("from lazypkg import nope", {})  # noqa: S102 - the import statement is the test


def test_a_lazy_name_missing_from_all_is_a_programming_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "badpkg.py").write_text(
        "from kitty_filelock import lazy_exports\n"
        "__all__ = ['a']\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'a': '_a', 'b': '_b'})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ValueError, match=r"lazy names \['b'\] are missing from __all__"):
            import badpkg  # type: ignore[import-not-found]  # noqa: F401
    finally:
        sys.modules.pop("badpkg", None)


def test_importing_kitty_filelock_runs_no_lock_module_and_every_name_resolves() -> None:
    probe = textwrap.dedent(
        """
        import sys
        import kitty_filelock
        print(sorted(m for m in sys.modules if m.startswith("kitty_filelock.")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == str(
        ["kitty_filelock._exports", "kitty_filelock._installed", "kitty_filelock._readonly"]
    )
    for name in kitty_filelock.__all__:
        assert getattr(kitty_filelock, name) is not None, name
