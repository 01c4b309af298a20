"""`installed_version`: importlib.metadata's answer without importing it (issue 15), and a light
import of the package (no importlib.metadata, no asyncio until a program uses them)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kitty_filelock
from kitty_filelock import installed_version


def _dist_info(directory: Path, dirname: str, version: str) -> Path:
    info = directory / dirname
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dirname.partition('-')[0]}\nVersion: {version}\n\n"
        "Version: 9.9.9 (the body is not a header)\n",
        encoding="utf-8",
    )
    return info


def _egg_info(directory: Path, dirname: str, version: str) -> None:
    info = directory / dirname
    info.mkdir(parents=True)
    (info / "PKG-INFO").write_text(
        f"Metadata-Version: 1.0\nName: {dirname.partition('-')[0]}\nVersion: {version}\n",
        encoding="utf-8",
    )


def test_every_installed_distribution_agrees_with_importlib_metadata() -> None:
    names = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert "kitty-filelock" in names
    for name in sorted(names):
        assert installed_version(name) == importlib.metadata.version(name), name
    assert kitty_filelock.__version__ == importlib.metadata.version("kitty-filelock")


def test_names_are_matched_as_importlib_metadata_matches_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dist_info(tmp_path / "site", "Acme_Widget.Tools-1.2.3.dist-info", "1.2.3")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(tmp_path / "site")])
    for spelling in ("acme-widget-tools", "Acme.Widget_Tools", "ACME__widget--tools"):
        assert installed_version(spelling) == "1.2.3"
        assert importlib.metadata.version(spelling) == "1.2.3"
    assert installed_version("acme-widget") is None


def test_the_first_sys_path_entry_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dist_info(tmp_path / "first", "acme-2.0.0.dist-info", "2.0.0")
    _dist_info(tmp_path / "second", "acme-1.0.0.dist-info", "1.0.0")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "first"), str(tmp_path / "second")])
    assert installed_version("acme") == "2.0.0" == importlib.metadata.version("acme")


def test_an_install_during_the_process_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [str(site)])
    assert installed_version("late") is None
    _dist_info(site, "late-0.3.0.dist-info", "0.3.0")
    os.utime(site, ns=(0, 10**18))  # a new mtime even on a filesystem with a coarse clock
    assert installed_version("late") == "0.3.0"


def test_other_layouts_are_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An .egg-info ahead of a .dist-info of the same name: importlib.metadata reads the egg.
    _egg_info(tmp_path / "eggs", "acme-0.9.egg-info", "0.9")
    _dist_info(tmp_path / "site", "acme-1.0.0.dist-info", "1.0.0")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "eggs"), str(tmp_path / "site")])
    assert installed_version("acme") == "0.9" == importlib.metadata.version("acme")


class _Finder:
    """A meta path finder that lists distributions of its own (a plugin system, a zipapp)."""

    def find_spec(self, *args: object) -> None:
        return None

    def find_distributions(
        self, context: importlib.metadata.DistributionFinder.Context
    ) -> Iterator[importlib.metadata.Distribution]:
        if context.name == "acme":
            yield importlib.metadata.PathDistribution(self.path)

    def __init__(self, path: Path) -> None:
        self.path = path


def test_a_custom_finder_is_asked_first_as_importlib_metadata_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = _dist_info(tmp_path / "plugin", "acme-3.0.0.dist-info", "3.0.0")
    _dist_info(tmp_path / "site", "acme-1.0.0.dist-info", "1.0.0")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site")])
    monkeypatch.setattr(sys, "meta_path", [_Finder(custom), *sys.meta_path])
    assert installed_version("acme") == "3.0.0" == importlib.metadata.version("acme")


def test_undecodable_metadata_fails_as_importlib_metadata_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = _dist_info(tmp_path / "site", "broken-1.0.0.dist-info", "1.0.0")
    (info / "METADATA").write_bytes(b"Name: broken\nVersion: \xff\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site")])
    # Not UTF-8: the cheap reader gives up and importlib.metadata has the last word.
    with pytest.raises(UnicodeDecodeError):
        importlib.metadata.version("broken")
    with pytest.raises(UnicodeDecodeError):
        installed_version("broken")


def test_importing_and_locking_loads_neither_importlib_metadata_nor_asyncio(
    tmp_path: Path,
) -> None:
    code = (
        "import sys, kitty_filelock\n"
        "lock = kitty_filelock.MachineFileLock(sys.argv[1])\n"
        "with lock:\n"
        "    pass\n"
        "print(kitty_filelock.__version__)\n"
        "print(sorted(m for m in ('asyncio', 'importlib.metadata', 'email') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.lock")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    version, loaded = proc.stdout.splitlines()
    assert version == importlib.metadata.version("kitty-filelock")
    assert loaded == "[]"
