"""Collect the seven sections, each in isolation (DOC-02), and derive the findings."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from kitty_filelock import frozen_dataclass

from . import _collect
from ._config import Config
from ._errors import current_traceback
from ._findings import FindingContext, after_repairs, derive_findings
from ._model import (
    DaemonsFacts,
    Finding,
    HomeFacts,
    IdentityFacts,
    LockFacts,
    OrphansFacts,
    Repairs,
    Report,
    SectionName,
    SectionResult,
    SectionStatus,
    StorageFacts,
    TokenFacts,
)
from ._redact import Redactor

T = TypeVar("T")


@frozen_dataclass
class Collectors:
    """The section collectors; a seam so tests can make one section crash on purpose."""

    identity: Callable[[Config], IdentityFacts] = _collect.collect_identity
    tokens: Callable[[Config, Redactor, dt.datetime], TokenFacts] = _collect.collect_tokens
    storage: Callable[[Config], StorageFacts] = _collect.collect_storage
    refresh_lock: Callable[[Config, dt.datetime], LockFacts] = _collect.collect_lock
    daemons: Callable[[Config, Redactor], DaemonsFacts] = _collect.collect_daemons
    orphans: Callable[[Config], OrphansFacts] = _collect.collect_orphans
    findings: Callable[..., tuple[Finding, ...]] = derive_findings


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def run_section(name: SectionName, fn: Callable[[], T]) -> tuple[SectionResult, T | None]:
    """Run one collector; any exception becomes a `crashed` section instead of a dead report."""
    start = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:
        return (
            SectionResult(
                name,
                SectionStatus.CRASHED,
                _ms_since(start),
                error=f"{type(exc).__name__}: {exc}",
                traceback=current_traceback(),
            ),
            None,
        )
    return SectionResult(name, SectionStatus.OK, _ms_since(start)), value


def finding_context(cfg: Config) -> FindingContext:
    return FindingContext(
        session_path=str(cfg.session_path),
        login_command=cfg.login_command,
        home_flag=cfg.home_flag,
        family=cfg.family_flag,
        stuck_threshold_s=cfg.stuck_threshold_s,
        expected_version_flag=cfg.expected_version_flag,
        uid=os.getuid() if hasattr(os, "getuid") else None,
        brand=cfg.brand,
        texts=cfg.texts,
    )


def build_report(
    cfg: Config,
    *,
    tool_version: str,
    packages: Mapping[str, str],
    redactor: Redactor,
    collectors: Collectors | None = None,
    repairs: Repairs | None = None,
    now: dt.datetime | None = None,
) -> Report:
    c = collectors or Collectors()
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    # The daemon section waits on loopback health answers (up to its timeout when a recorded
    # daemon is wedged) and so does the orphan scan: run it on a second thread so the two waits
    # overlap instead of adding up (DOC-13's bound with wedged listeners). Results are still
    # reported in section order, and a crash stays inside its own section.
    daemons_box: list[tuple[SectionResult, DaemonsFacts | None]] = []
    worker = threading.Thread(
        target=lambda: daemons_box.append(
            run_section(SectionName.DAEMONS, lambda: c.daemons(cfg, redactor))
        ),
        name="doctor-daemons",
        daemon=True,
    )
    worker.start()
    r_identity, identity = run_section(SectionName.IDENTITY, lambda: c.identity(cfg))
    r_tokens, tokens = run_section(SectionName.TOKENS, lambda: c.tokens(cfg, redactor, now))
    r_storage, storage = run_section(SectionName.STORAGE, lambda: c.storage(cfg))
    r_lock, lock = run_section(SectionName.REFRESH_LOCK, lambda: c.refresh_lock(cfg, now))
    r_orphans, orphans = run_section(SectionName.ORPHANS, lambda: c.orphans(cfg))
    worker.join()
    r_daemons, daemons = daemons_box[0]
    results = [r_identity, r_tokens, r_storage, r_lock, r_daemons, r_orphans]
    ctx = finding_context(cfg)
    r_findings, findings = run_section(
        SectionName.FINDINGS,
        lambda: c.findings(
            identity=identity,
            tokens=tokens,
            storage=storage,
            lock=lock,
            daemons=daemons,
            orphans=orphans,
            sections=results,
            ctx=ctx,
        ),
    )
    results.append(r_findings)
    if findings is None:
        # The engine itself crashed: still report that (KD901) so the exit code is 2.
        findings = derive_findings(
            identity=None,
            tokens=None,
            storage=None,
            lock=None,
            daemons=None,
            orphans=None,
            sections=results,
            ctx=ctx,
        )
    repairs = repairs or Repairs()
    findings = after_repairs(findings, repairs.reset, ctx)
    return Report(
        tool_version=tool_version,
        packages=dict(packages),
        generated_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        duration_ms=_ms_since(started),
        home=HomeFacts(str(cfg.home), cfg.home_source, cfg.home.is_dir(), cfg.brand.home_env),
        families=cfg.families,
        identity=identity,
        tokens=tokens,
        storage=storage,
        refresh_lock=lock,
        daemons=daemons,
        orphans=orphans,
        findings=findings,
        sections=tuple(results),
        repairs=repairs,
        ranges=dict(cfg.ranges),
        brand=cfg.brand,
        mask=redactor.scrub,
    )
