"""INT-14: the incident against panva's oidc-provider, whose reuse detection revokes the grant.

The shapes of `test_auth_incident.py`, with a provider nobody here wrote: B loads the session,
A rotates it, B then refreshes from its stale copy (kitty adopts, no request); B's stale token
really on the wire (parked by the provider while a non-locking writer rotates the same token and
replaces the file) is a stale rejection and the file is kept; the naive client of the incident
loses the session (the harness can see the bug). Access tokens live 30 s here, not 3 s: the
incident is about rotation, and "A's tokens are still fresh when B looks" must not depend on
how fast two processes are scheduled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from _auth_fixtures import (
    Worker,
    assert_file_unchanged,
    assert_no_token_in_logs,
    material_fp,
    reaped,
    session_file,
    start_worker,
    tokens_of,
)
from _harness import wait_for
from _oidc_provider import (
    PUBLIC_CLIENT,
    OidcProvider,
    login_to_home,
    running_provider,
    session_from_login,
)
from kitty_auth_refresh import SessionStore

pytestmark = pytest.mark.timeout(30)
WORKER_TIMEOUT_S = 25.0
INCIDENT_ACCESS_TTL_S = 30


@pytest.fixture(scope="module")
def _provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    workdir = tmp_path_factory.mktemp("oidc-incident")
    with running_provider(workdir, access_ttl=INCIDENT_ACCESS_TTL_S) as provider:
        yield provider


@pytest.fixture
def op(_provider: OidcProvider) -> OidcProvider:
    _provider.reset()
    return _provider


def _incident(
    role: str, op: OidcProvider, kitty_home: Path, tmp_path: Path
) -> tuple[Worker, Worker]:
    """File barriers only: B loads; A rotates; B refreshes from what it loaded."""
    b_loaded, rotated = tmp_path / "b_loaded", tmp_path / "rotated"
    with reaped([]) as workers:
        for name, args in (
            ("B", ["--ready", str(b_loaded), "--wait", str(rotated)]),
            ("A", ["--wait", str(b_loaded), "--done", str(rotated)]),
        ):
            workers.append(
                start_worker(
                    name,
                    role,
                    tmp_path,
                    home=kitty_home,
                    server=op,
                    client_id=PUBLIC_CLIENT,
                    args=args,
                )
            )
        b, a = workers
        assert a.wait(WORKER_TIMEOUT_S) == 0
        assert b.wait(WORKER_TIMEOUT_S) == 0
    return a, b


def test_stale_process_adopts_the_rotated_session(
    op: OidcProvider, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(op, kitty_home)
    a, b = _incident("manager", op, kitty_home, tmp_path)

    ra, rb = a.result(), b.result()
    on_disk = SessionStore(kitty_home / "auth").read()
    assert on_disk is not None, "the session file was lost"
    assert rb["loaded"] == material_fp(original)
    assert (ra["outcome"], rb["outcome"], rb["network_call"]) == (
        "refreshed",
        "adopted_newer",
        False,
    )
    assert rb["final"] == ra["final"] == material_fp(on_disk) != material_fp(original)
    assert (ra["api_status"], rb["api_status"]) == (200, 200)  # userinfo accepted both
    counters = op.counters()
    assert (counters["refresh_ok"], counters["reuse_detected"]) == (1, 0)
    assert counters["grant_revocations"] == 0
    assert op.presentations(original.refresh_token) == 1  # B never sent the spent token
    assert_no_token_in_logs([a.log_path, b.log_path], tokens_of(original, on_disk))


def test_stale_token_on_the_wire_is_a_stale_rejection_and_the_file_is_kept(
    op: OidcProvider, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(op, kitty_home)
    op.fault(hold_next=1)  # park B's request at the provider, after it left B under the lock
    with reaped([]) as workers:
        b = start_worker(
            "B", "transaction", tmp_path, home=kitty_home, server=op, client_id=PUBLIC_CLIENT
        )
        workers.append(b)
        try:
            wait_for(lambda: op.counters()["held"] == 1, timeout=20, what="B's request")
            # A non-locking writer (an old client) rotates the same token and replaces the
            # file while B's request is in flight: B's token is now stale, on the wire.
            sent = dt.datetime.now(dt.UTC)
            rotated = op.raw_refresh(original.refresh_token)
            assert rotated.status_code == 200
            newer = session_from_login(rotated.json(), sent)
            SessionStore(kitty_home / "auth").write(newer)
            written = session_file(kitty_home).read_bytes()
        finally:
            op.release()
        assert b.wait(WORKER_TIMEOUT_S) == 0

    rb = b.result()
    assert (rb["outcome"], rb["network_call"]) == ("stale_rejection_preserved", True)
    assert rb["material"] == material_fp(newer)
    assert_file_unchanged(session_file(kitty_home), written, "kept, byte for byte")
    # The provider saw B's stale token after the writer spent it and revoked the grant (the old
    # client's fault, and the provider's policy); kitty's part is that it deleted nothing.
    counters = op.counters()
    assert (counters["reuse_detected"], counters["grant_revocations"]) == (1, 1)
    assert op.presentations(original.refresh_token) == 2
    assert_no_token_in_logs([b.log_path], tokens_of(original, newer))


def test_negative_control_naive_client_loses_the_session(
    op: OidcProvider, kitty_home: Path, tmp_path: Path
) -> None:
    login_to_home(op, kitty_home)
    a, b = _incident("naive", op, kitty_home, tmp_path)

    assert a.result()["status"] == 200
    rb = b.result()
    assert (rb["status"], rb["deleted"]) == (400, True)
    assert not session_file(kitty_home).exists(), "the harness failed to reproduce the loss"
    counters = op.counters()
    assert (counters["reuse_detected"], counters["grant_revocations"]) == (1, 1)
