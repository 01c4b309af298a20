"""`kitty-doctor` console script and `python -m kitty_doctor`."""

from __future__ import annotations

import sys


def _skip_httpx_cli() -> None:
    """Keep httpx's own command-line tool out of this process (DOC-13).

    kitty-auth-refresh imports httpx, and `import httpx` also imports `httpx._main` (its CLI, which
    pulls in click, rich and pygments: ~100+ ms) whenever rich is installed, which kitty-doctor's
    own dependency guarantees. httpx treats an ImportError there as "CLI not installed" and only
    the unused `httpx.main` entry point is affected. Done here, in the application's entry point,
    never on `import kitty_doctor`.
    """
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None blocks the import


def main() -> None:
    _skip_httpx_cli()
    from ._cli import main_with_args

    sys.exit(main_with_args(sys.argv[1:]))


if __name__ == "__main__":
    main()
