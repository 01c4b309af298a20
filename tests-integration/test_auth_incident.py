"""INT-04: the incident regression — a stale process must never log the user out.

Two worker processes share one KITTY_HOME against the strict reuse-detecting Authlib server,
ordered by file barriers only: B loads the session; A rotates it; B then refreshes from its stale
in-memory copy. The variant puts B's stale token really on the wire (parked by the server while a
non-locking writer replaces the file), and the negative control runs the same scenario with the
naive client of the incident to prove the harness can see the bug.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _auth_fixtures import (
    OAuthServer,
    Worker,
    assert_file_unchanged,
    assert_no_token_in_logs,
    login_to_home,
    material_fp,
    read_home,
    reaped,
    session_file,
    session_from_token,
    start_worker,
    tokens_of,
)
from _harness import wait_for
from kitty_auth_refresh import SessionStore

pytestmark = pytest.mark.timeout(30)  # INT-04 hard cap per test
WORKER_TIMEOUT_S = 25.0


def _outcome_lines(workers: list[Worker], outcome: str) -> int:
    needle = f"refresh outcome={outcome} "
    return sum(w.log_path.read_text().count(needle) for w in workers)


def _incident(
    client: str, oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> tuple[Worker, Worker]:
    """The incident's choreography, file barriers only: B loads; A rotates; B refreshes stale.

    The fix and the negative control run exactly this, differing only in the client."""
    b_loaded, rotated = tmp_path / "b_loaded", tmp_path / "rotated"
    with reaped([]) as workers:
        b = start_worker(
            "B",
            client,
            tmp_path,
            home=kitty_home,
            server=oauth,
            args=["--ready", str(b_loaded), "--wait", str(rotated)],
        )
        workers.append(b)
        a = start_worker(
            "A",
            client,
            tmp_path,
            home=kitty_home,
            server=oauth,
            args=["--wait", str(b_loaded), "--done", str(rotated)],
        )
        workers.append(a)
        assert a.wait(WORKER_TIMEOUT_S) == 0
        assert b.wait(WORKER_TIMEOUT_S) == 0
    return a, b


def test_stale_process_adopts_the_rotated_session(
    oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(oauth, kitty_home)
    a, b = _incident("manager", oauth, kitty_home, tmp_path)
    workers = [a, b]

    ra, rb = a.result(), b.result()
    on_disk = read_home(kitty_home)
    assert on_disk is not None, "the session file was lost"
    assert rb["loaded"] == material_fp(original)  # B really held the pre-rotation material
    assert ra["outcome"] == "refreshed"
    assert rb["outcome"] == "adopted_newer"
    assert rb["network_call"] is False
    assert rb["final"] == ra["final"] == material_fp(on_disk) != material_fp(original)
    assert (ra["api_status"], rb["api_status"]) == (200, 200)
    counters = oauth.counters()
    assert counters["refresh_ok"] == 1
    assert counters["reuse_detected"] == 0
    assert counters["family_revocations"] == 0
    presented = oauth.presentations(original.refresh_token)
    assert presented == 1  # B never sent the spent token
    assert _outcome_lines(workers, "refreshed") == 1
    assert _outcome_lines(workers, "adopted_newer") == 1
    assert_no_token_in_logs(
        [a.log_path, b.log_path],
        [
            original.access_token,
            original.refresh_token,
            on_disk.access_token,
            on_disk.refresh_token,
        ],
    )


def test_stale_token_on_the_wire_is_a_stale_rejection_and_the_file_is_kept(
    oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(oauth, kitty_home)
    oauth.fault(hold_next=1)  # park B's request at the server, after it left B under the lock

    with reaped([]) as workers:
        b = start_worker("B", "transaction", tmp_path, home=kitty_home, server=oauth)
        workers.append(b)
        try:
            wait_for(lambda: oauth.counters()["held"] == 1, timeout=20, what="B's request")
            # A non-locking writer (an old client) rotates the same token and replaces the file
            # while B's request is in flight: B's token is now stale, on the wire.
            rotated = oauth.raw_refresh(original.refresh_token)
            assert rotated.status_code == 200
            newer = session_from_token(rotated.json())
            SessionStore(kitty_home / "auth").write(newer)
            written = session_file(kitty_home).read_bytes()
        finally:
            oauth.release()
        assert b.wait(WORKER_TIMEOUT_S) == 0

    rb = b.result()
    assert rb["outcome"] == "stale_rejection_preserved"
    assert rb["network_call"] is True
    assert rb["material"] == material_fp(newer)
    assert_file_unchanged(session_file(kitty_home), written, "kept, byte for byte")
    # The server saw B's stale token after the writer spent it: its reuse detection fired (the
    # old client's fault) — kitty's part is that it deleted nothing.
    presented = oauth.presentations(original.refresh_token)
    assert presented == 2
    assert oauth.counters()["reuse_detected"] == 1
    assert _outcome_lines(workers, "stale_rejection_preserved") == 1
    assert_no_token_in_logs(
        [b.log_path],
        tokens_of(original, newer),
    )


def test_negative_control_naive_client_loses_the_session(
    oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(oauth, kitty_home)
    a, b = _incident("naive", oauth, kitty_home, tmp_path)

    assert a.result()["status"] == 200
    rb = b.result()
    assert (rb["status"], rb["deleted"]) == (400, True)
    assert not session_file(kitty_home).exists(), "the harness failed to reproduce the loss"
    counters = oauth.counters()
    assert counters["reuse_detected"] == 1
    assert counters["family_revocations"] == 1
    presented = oauth.presentations(original.refresh_token)
    assert presented == 2
