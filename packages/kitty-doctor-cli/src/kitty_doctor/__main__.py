"""`kitty-doctor` console script and `python -m kitty_doctor`."""

from __future__ import annotations

import sys


def main() -> None:
    from ._cli import main_with_args

    sys.exit(main_with_args(sys.argv[1:]))


if __name__ == "__main__":
    main()
