"""`kitty-doctor` console script and `python -m kitty_doctor`."""

from __future__ import annotations

import sys


def main() -> None:
    # Imported here so `python -m kitty_doctor --help` pays only for what the CLI module needs.
    from ._cli import main_with_args

    sys.exit(main_with_args(sys.argv[1:]))


if __name__ == "__main__":
    main()
