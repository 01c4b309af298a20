"""`kitty-doctor` console script and `python -m kitty_doctor`."""

from __future__ import annotations

import sys


def main() -> None:
    # Imported here so `import kitty_doctor.__main__` costs nothing; `_run` imports typer only
    # for a command line its own parser leaves to click (help, version, errors).
    from ._run import main_with_args

    sys.exit(main_with_args(sys.argv[1:]))


if __name__ == "__main__":
    main()
