"""The JSON document (DOC-08) against the shipped schema (DOC-09)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from _doctorkit import SCHEMA, validate
from _reports import representative
from kitty_doctor._document import dumps, error_document, jsonable, report_document
from kitty_doctor._model import (
    REPORT_SCHEMA_VERSION,
    Repairs,
    SectionName,
    SectionResult,
    SectionStatus,
    UnstickResult,
)


def _doc(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dumps(report_document(representative(**kw))))
    validate(doc)
    return doc


def test_schema_is_draft_2020_12_and_valid() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_report_has_every_required_top_level_key() -> None:
    doc = _doc()
    assert list(doc)[:5] == ["schema_version", "tool", "generated_at", "duration_ms", "exit_code"]
    for key in (
        "home",
        "identity",
        "tokens",
        "storage",
        "refresh_lock",
        "daemons",
        "orphans",
        "findings",
        "repairs",
        "sections",
    ):
        assert key in doc
    assert doc["schema_version"] == REPORT_SCHEMA_VERSION == 1
    assert doc["tool"]["name"] == "kitty-doctor"
    assert set(doc["tool"]["packages"]) == {
        "kitty-filelock",
        "kitty-auth-refresh",
        "kitty-daemon-identity",
        "kitty-orphan-sweep",
        "kitty-doctor-cli",
    }
    assert doc["exit_code"] == 1  # KD201 is critical
    assert doc["home"] == {"path": "/h", "source": "default", "exists": True}
    assert doc["daemons"]["dashboard"] is None
    assert doc["daemons"]["sync"]["recorded"]["pid"] == 5150
    assert doc["daemons"]["sync"]["health"] == "healthy"
    assert doc["daemons"]["sync"]["version_drift"] is False
    assert [r["port"] for r in doc["orphans"]["sync"]] == [20403, 20404, 20405]
    assert doc["orphans"]["sync"][2]["cleanup_class"] == "never_touch"  # a squatter is visible
    assert doc["refresh_lock"]["stuck"] is True
    assert doc["refresh_lock"]["record"]["pid"] == 4242
    assert doc["storage"]["mode"] == "0600"
    assert doc["tokens"]["refresh_server_managed"] is True
    assert [f["id"] for f in doc["findings"]] == ["KD201", "KD401", "KD402"]
    assert doc["findings"][0]["remediation"] == {
        "command": "kill 4242",
        "description": (
            "stop the process that holds the lock; --unstick-lock cannot free a held lock"
        ),
    }
    assert doc["repairs"] == {"reset": None, "unstick_lock": None}
    assert list(doc["sections"]) == [s.value for s in SectionName]
    assert doc["sections"]["identity"] == {"status": "ok", "duration_ms": 1, "error": None}


def test_crashed_sections_are_null_and_still_valid() -> None:
    sections = tuple(
        SectionResult(n, SectionStatus.CRASHED, 0.4, "RuntimeError: x") for n in SectionName
    )
    report = replace(
        representative(
            identity=None, tokens=None, storage=None, lock=None, daemons=None, orphans=None
        ),
        sections=sections,
    )
    doc = json.loads(dumps(report_document(report)))
    validate(doc)
    assert doc["exit_code"] == 2
    assert doc["identity"] is None
    assert doc["daemons"] is None
    assert doc["scope_key"] is None
    assert doc["sections"]["orphans"] == {
        "status": "crashed",
        "duration_ms": 0,
        "error": "RuntimeError: x",
    }


def test_repairs_block_validates() -> None:
    reset = {
        "swept": [{"pid": 1, "port": 20403, "cleanup_class": "safe_auto", "cleanup_path": "kill"}],
        "skipped": [],
        "failed": [],
        "consent": "forced",
        "recorded_daemons": [],
        "hint": None,
    }
    report = replace(representative(), repairs=Repairs(reset, UnstickResult(False, "held")))
    doc = json.loads(dumps(report_document(report)))
    validate(doc)
    assert doc["repairs"]["unstick_lock"] == {"released": False, "message": "held"}
    assert doc["repairs"]["reset"]["swept"][0]["cleanup_path"] == "kill"


def test_error_envelope() -> None:
    doc = error_document("usage_error", "No such option: --bogus")
    validate(doc)
    assert dumps(doc) == (
        '{"schema_version": 1, "error": {"type": "usage_error",'
        ' "message": "No such option: --bogus"}, "exit_code": 2}'
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("findings"),
        lambda d: d.__setitem__("exit_code", 3),
        lambda d: d["findings"][0].__setitem__("severity", "fatal"),
        lambda d: d["findings"][0]["remediation"].pop("command"),
        lambda d: d["sections"]["tokens"].__setitem__("status", "skipped"),
        lambda d: d["orphans"]["sync"][0].__setitem__("cleanup_class", "maybe"),
        # Families are open (an app names its own), but a family name is still a name.
        lambda d: d["daemons"].__setitem__("Weekly!", None),
        lambda d: d["tool"]["packages"].pop("kitty-filelock"),
    ],
)
def test_schema_rejects_broken_documents(mutate: Any) -> None:
    doc = copy.deepcopy(_doc())
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_schema_rejects_broken_envelope() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate({"schema_version": 1, "error": {"type": "x"}, "exit_code": 2})
    with pytest.raises(jsonschema.ValidationError):
        validate({"schema_version": 1, "error": {"type": "x", "message": "m"}, "exit_code": 1})


def test_jsonable_converts_dataclasses_enums_and_sequences() -> None:
    assert jsonable((SectionStatus.OK, {"a": UnstickResult(True, "m")}, frozenset())) == [
        "ok",
        {"a": {"released": True, "message": "m"}},
        [],
    ]
    assert jsonable(object.__new__(type("Odd", (), {"__str__": lambda self: "odd"}))) == "odd"
