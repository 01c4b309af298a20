"""Result types serialise to plain JSON; errors read as sentences, pickle, and hold no secret."""

from __future__ import annotations

import json
import pickle

from _orphan_sweep_helpers import make_record
from kitty_orphan_sweep import (
    CleanupPath,
    DaemonStartError,
    FailedEntry,
    FailureReason,
    KittySweepError,
    NoFreePortError,
    ResetResult,
    SkippedEntry,
    SweepGuardError,
    SweptEntry,
)


def test_reset_result_to_dict_is_plain_json() -> None:
    result = ResetResult(
        swept=(SweptEntry(1, 2, "3.2.2", 1, "safe_auto", CleanupPath.KILL, "safe_auto", 1.5),),
        skipped=(SkippedEntry(4, 5, "never_touch", "third_party"),),
        failed=(FailedEntry(6, 7, "safe_auto", FailureReason.PID_REUSED, "x"),),
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["swept"][0]["cleanup_path"] == "kill"
    assert data["failed"][0]["failure_reason"] == "pid_reused"
    assert data["skipped"][0] == {
        "pid": 4,
        "port": 5,
        "cleanup_class": "never_touch",
        "skip_reason": "third_party",
    }


def test_failure_vocabulary_is_exactly_swp_13() -> None:
    assert {r.value for r in FailureReason} == {
        "pid_reused",
        "identity_changed",
        "refused_self",
        "access_denied_on_terminate",
        "access_denied_on_kill",
        "still_alive_after_kill",
        "process_gone_but_port_still_listening",
        "no_pid_and_http_shutdown_failed",
        "socket_not_owned",
        "unknown_failure",
    }


def test_errors_pickle_and_explain_the_fix() -> None:
    guard = SweepGuardError(make_record(1, 9400, 1.0), "port_in_family_range")
    no_port = NoFreePortError("sync", "9400-9450")
    start = DaemonStartError("the sync daemon exited during start", 2, "line 1\nline 2\n")
    for err in (guard, no_port, start):
        assert isinstance(err, KittySweepError)
        clone = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes, just made
        assert str(clone) == str(err)
    assert isinstance(guard, RuntimeError)
    assert "KITTY_SYNC_PORTS" in str(no_port)
    assert "9400-9450" in str(no_port)
    assert "exit code 2" in str(start)
    assert str(start).endswith("line 1\nline 2")
    assert "still running" in str(DaemonStartError("x", None, ""))
    assert "(log is empty)" in str(DaemonStartError("x", None, ""))


def test_shutdown_request_repr_hides_the_scope_key() -> None:
    from kitty_orphan_sweep._escalate import shutdown_request

    key = "ab" * 32
    request = shutdown_request(9400, key)
    assert request.headers["Authorization"] == f"Bearer {key}"
    assert key not in repr(request)
