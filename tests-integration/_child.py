"""The one script the live suite's helper processes run: ``python _child.py FAMILY [ARGS...]``.

Tests never start a helper by another path (`_harness.child_argv` builds this argv), so a child
is always this file plus a family, and the bodies live by concept in their own modules:

    daemon        `_daemon_workers.py`: counting listener, sleeper, busy daemon, lock holder,
                  barrier-released `ensure_daemon` caller
    lock          `_lock_workers.py`: the cross-process lock workers (counter, hold, wait, fork)
    auth          `_auth_workers.py`: processes sharing one session (manager, transaction, naive,
                  soak roles)
    oauth-server  `_oauth_server.py`: the Authlib authorization server

A family's module is imported only when it is chosen, so a lock worker never pays for httpx or
Authlib. Each module's `main(argv)` parses the rest of the argv and returns the exit status.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Final

FAMILIES: Final = {
    "auth": "_auth_workers",
    "daemon": "_daemon_workers",
    "lock": "_lock_workers",
    "oauth-server": "_oauth_server",
}


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in FAMILIES:
        sys.stderr.write(f"usage: _child.py {{{','.join(FAMILIES)}}} [ARGS...]\n")
        return 2
    body = importlib.import_module(FAMILIES[argv[0]])
    status: int = body.main(list(argv[1:]))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
