"""AST mutation testing of kitty's guard and decision modules; rewrites docs/mutation.md.

Coverage says a line ran; a mutant says whether any test would notice the line being wrong.
Each mutant changes one AST node of one module (an operator, a condition, a raise, a return, a
constant), is written over the module file in place, and the package's tests run against it:
a failing run kills the mutant, a passing run lets it survive. Stdlib only, so it runs in any
venv that can run the tests. Run on request, never in the default sessions:

    uv run nox -s mutation                            # every default target
    uv run nox -s mutation -- --module _retire        # one module (repeatable)
    uv run nox -s mutation -- --list                  # print the mutants, run nothing
    uv run nox -s mutation -- --max-mutants 5         # the first 5 mutants of each module
    uv run nox -s mutation -- --retry-survivors       # judge only what the saved run did not kill

Known-equivalent mutants (no test can tell them apart) live in bench/mutation_equivalent.json
as {module, line, description, why}; they are not run and are left out of the score. Each run
also writes its raw verdicts to docs/mutation-results.json, after every module, merged with
the verdicts kept there for modules this run did not judge (so a run of one module, or a run
stopped half-way, never loses the others). After adding equivalents found among the survivors,
`-- --rescore` rewrites the doc from those verdicts without rerunning; after adding tests,
`-- --retry-survivors` judges only the mutants the saved verdicts do not show killed by a test
(a killed mutant stays killed when tests are added, as long as the module itself is unchanged:
that is checked).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import datetime as dt
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import FrameType

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "mutation.md"
# The raw verdicts of the last run, so that --rescore can apply a revised equivalent list to
# them without an hour of test runs.
RESULTS = ROOT / "docs" / "mutation-results.json"
EQUIVALENT_FILE = HERE / "mutation_equivalent.json"
# Hard cap on one pytest run; a mutant that hangs the suite (a loop that never ends) is killed.
RUN_TIMEOUT_S = 120.0
# Set in every pytest run's environment, so a process the run left behind is recognisable as
# ours even after it re-parented itself and left the run's session (a daemonised server).
TOKEN_VAR = "KITTY_MUTATION_RUN"

_OS = "packages/kitty-orphan-sweep"
_DI = "packages/kitty-daemon-identity"


@dataclass(frozen=True, slots=True)
class Target:
    """One module to mutate and the tests that judge its mutants."""

    #: The module file, relative to the repository root.
    module: str
    #: The package's whole test directory: the verdict for a mutant the fast tests miss.
    tests: str
    #: Pytest arguments run first (the tests aimed at this module); most mutants die here.
    fast: tuple[str, ...] = ()


DEFAULT_TARGETS: tuple[Target, ...] = (
    Target(
        f"{_OS}/src/kitty_orphan_sweep/_escalate.py",
        f"{_OS}/tests",
        (
            f"{_OS}/tests/test_orphan_sweep_guards.py",
            f"{_OS}/tests/test_orphan_sweep_pins.py",
            f"{_OS}/tests/test_orphan_sweep_sweep.py",
            f"{_OS}/tests/test_orphan_sweep_recorded.py",
        ),
    ),
    Target(
        f"{_OS}/src/kitty_orphan_sweep/_sweep.py",
        f"{_OS}/tests",
        (
            f"{_OS}/tests/test_orphan_sweep_sweep.py",
            f"{_OS}/tests/test_orphan_sweep_pins.py",
            f"{_OS}/tests/test_orphan_sweep_guards.py",
        ),
    ),
    Target(
        f"{_OS}/src/kitty_orphan_sweep/_ownership.py",
        f"{_OS}/tests",
        (f"{_OS}/tests/test_orphan_sweep_ownership.py", f"{_OS}/tests/test_orphan_sweep_sweep.py"),
    ),
    Target(
        f"{_OS}/src/kitty_orphan_sweep/_recorded.py",
        f"{_OS}/tests",
        (f"{_OS}/tests/test_orphan_sweep_recorded.py",),
    ),
    Target(
        f"{_DI}/src/kitty_daemon_identity/_classify.py",
        f"{_DI}/tests",
        (f"{_DI}/tests/test_daemon_identity_classify.py",),
    ),
    Target(
        f"{_DI}/src/kitty_daemon_identity/_retire.py",
        f"{_DI}/tests",
        (f"{_DI}/tests/test_daemon_identity_retire.py",),
    ),
)


@dataclass(frozen=True, slots=True)
class Mutant:
    """One single-node change to one module."""

    module: str
    line: int
    description: str
    #: The whole mutated module, ready to be written over the file.
    source: bytes

    @property
    def key(self) -> tuple[str, int, str]:
        """What bench/mutation_equivalent.json names a mutant by."""
        return (self.module, self.line, self.description)


@dataclass(slots=True)
class Outcome:
    """What the tests made of one mutant."""

    mutant: Mutant
    #: "killed", "survived" or "equivalent".
    status: str
    #: Which run killed it: "fast", "full" or "timeout" ("" when not killed).
    stage: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class ModuleReport:
    target: Target
    outcomes: list[Outcome] = field(default_factory=list)
    #: When and by which command these verdicts were obtained (set when the module is done).
    judged: str = ""
    #: Mutants of the equivalent list that this module no longer produces (a stale entry).
    stale_equivalents: list[dict[str, object]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def score(self) -> float | None:
        judged = len(self.outcomes) - self.count("equivalent")
        return self.count("killed") / judged if judged else None

    @property
    def seconds_per_mutant(self) -> float | None:
        run = [o.seconds for o in self.outcomes if o.status != "equivalent"]
        return sum(run) / len(run) if run else None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """How the verdicts were obtained (the header of the doc)."""

    command: str
    date: str
    seconds: float
    runs: int
    timeout: float
    #: When --rescore applied a newer equivalent list to these verdicts (None: as run).
    rescored: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- generating mutants ------------------------------------------------------------------------

_COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_COMPARE_TEXT: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}

_Function = ast.FunctionDef | ast.AsyncFunctionDef


def _short(node: ast.AST, limit: int = 60) -> str:
    """A node's code on one line, cut to `limit` characters: enough to find it in the file."""
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_docstring(node: ast.AST, parent: ast.AST) -> bool:
    return (
        isinstance(parent, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and bool(parent.body)
        and parent.body[0] is node
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _is_type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:` (imports for the type checker only)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _children(node: ast.AST) -> Iterator[tuple[str, int | None, ast.AST]]:
    """(field, index in the list or None, child) for every child node that may be mutated.

    Not annotations (never evaluated at run time here: every module has `from __future__ import
    annotations`), not decorators (declarations such as `frozen=True`, not decisions), not
    f-strings (3.11 reports unreliable positions inside them, and they only format messages).
    """
    for name, value in ast.iter_fields(node):
        if name in ("annotation", "returns", "decorator_list"):
            continue
        if _is_type_checking(node) and name in ("test", "body"):
            continue
        items = value if isinstance(value, list) else [value]
        for index, child in enumerate(items):
            if not isinstance(child, ast.AST) or isinstance(child, ast.JoinedStr):
                continue
            if _is_docstring(child, node):
                continue
            yield name, (index if isinstance(value, list) else None), child


@dataclass(frozen=True, slots=True)
class _Site:
    """A node that may be mutated, where it hangs in the tree, and its enclosing function."""

    node: ast.AST
    parent: ast.AST
    name: str
    index: int | None
    function: _Function | None


def _sites(node: ast.AST, function: _Function | None = None) -> Iterator[_Site]:
    """Every mutable node under `node` in source order (pre-order), with how to swap it out."""
    inner = node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else function
    for name, index, child in _children(node):
        yield _Site(child, node, name, index, inner)
        yield from _sites(child, inner)


def _replacements(site: _Site) -> Iterator[tuple[ast.AST, str]]:
    """(replacement node, description) for each mutation this site offers."""
    node = site.node
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            swapped = _COMPARE_SWAP.get(type(op))
            if swapped is None:
                continue
            changed = copy.copy(node)
            changed.ops = [*node.ops[:i], swapped(), *node.ops[i + 1 :]]
            before, after = _COMPARE_TEXT[type(op)], _COMPARE_TEXT[swapped]
            yield changed, f"`{before}` → `{after}` in `{_short(node)}`"
    elif isinstance(node, ast.BoolOp):
        changed_bool = copy.copy(node)
        changed_bool.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        before, after = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        yield changed_bool, f"`{before}` → `{after}` in `{_short(node)}`"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node.operand, f"`not x` → `x` in `{_short(node)}`"
    elif isinstance(node, ast.Raise):
        yield ast.Pass(), f"`{_short(node)}` → `pass`"
    elif isinstance(node, ast.Return):
        yield from _return_none(node, site.function)
    elif isinstance(node, ast.Constant):
        yield from _constant(node)
    # An `if` test is a field of its `if`, so it is offered when the test itself is the site.
    if isinstance(site.parent, ast.If) and site.name == "test":
        for value in (True, False):
            yield ast.Constant(value), f"`if {_short(node)}` → `if {value}`"


def _return_none(node: ast.Return, function: _Function | None) -> Iterator[tuple[ast.AST, str]]:
    """`return x` → `return None`, unless the function says it returns None anyway."""
    if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
        return
    returns = function.returns if function is not None else None
    if isinstance(returns, ast.Constant) and returns.value is None:
        return
    changed = copy.copy(node)
    changed.value = ast.Constant(None)
    yield changed, f"`{_short(node)}` → `return None`"


def _constant(node: ast.Constant) -> Iterator[tuple[ast.AST, str]]:
    """True ↔ False; a number c → c+1, except 0 ↔ 1 (the two values a boundary most often is)."""
    value = node.value
    if isinstance(value, bool):
        yield ast.Constant(not value), f"`{value}` → `{not value}`"
    elif isinstance(value, int | float):
        new: int | float
        if value == 0:
            new = type(value)(1)
        elif value == 1:
            new = type(value)(0)
        else:
            new = value + 1
        yield ast.Constant(new), f"constant `{value!r}` → `{new!r}`"


def _line_starts(source: bytes) -> list[int]:
    """Byte offset of each line start: AST columns are UTF-8 byte offsets, not characters."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _set_child(site: _Site, new: ast.AST) -> None:
    if site.index is None:
        setattr(site.parent, site.name, new)
    else:
        getattr(site.parent, site.name)[site.index] = new


def _splice(
    source: bytes, starts: list[int], node: ast.expr | ast.stmt, new: ast.AST, *, pad: bool
) -> bytes:
    """The source with `node`'s text replaced by `new`'s, everything else byte-identical.

    Keeping the rest of the file as it is keeps comments, and with `pad` (newlines for the
    lines a multi-line node spanned) every later line number, so tracebacks point at the real
    line. An expression is parenthesised, so precedence cannot change what the replacement
    means (`a and not (b or c)` → `a and (b or c)`, not `a and b or c`), and inside the
    parentheses the padding newlines are legal.
    """
    assert node.end_lineno is not None  # always set by ast.parse
    assert node.end_col_offset is not None
    start = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset
    newlines = "\n" * (node.end_lineno - node.lineno) if pad else ""
    if isinstance(new, ast.stmt):
        text = ast.unparse(new) + newlines
    else:
        text = f"({ast.unparse(new)}{newlines})"
    return source[:start] + text.encode() + source[end:]


def _mutated_text(
    source: bytes, starts: list[int], tree: ast.Module, site: _Site, new: ast.AST
) -> bytes | None:
    """The module with `site` replaced by `new`, checked to parse to exactly that tree; None if
    that changes nothing (`if True` → `if True`).

    A padded splice fails the check only where a statement is followed by more code on its
    last line (`raise X; y`); then unpadded; a whole-module unparse is the last resort.
    """
    original = ast.dump(tree)
    _set_child(site, new)
    expected = ast.dump(tree)
    fallback = (ast.unparse(tree) + "\n").encode()
    _set_child(site, site.node)
    if expected == original:
        return None
    assert isinstance(site.node, ast.expr | ast.stmt)  # every site is one or the other
    for pad in (True, False):
        text = _splice(source, starts, site.node, new, pad=pad)
        try:
            if ast.dump(ast.parse(text)) == expected:
                return text
        except SyntaxError:
            continue
    return fallback


def generate(module: str) -> list[Mutant]:
    """Every mutant of `module` (a repo-relative path), in source order."""
    source = (ROOT / module).read_bytes()
    tree = ast.parse(source)
    starts = _line_starts(source)
    mutants: list[Mutant] = []
    seen: dict[tuple[int, str], int] = {}
    for site in list(_sites(tree)):
        for new, description in _replacements(site):
            text = _mutated_text(source, starts, tree, site, new)
            if text is None:
                continue
            line = getattr(site.node, "lineno", 0)
            # The same change twice on one line (two `0`s) is told apart by its ordinal.
            repeat = seen.get((line, description), 0) + 1
            seen[(line, description)] = repeat
            if repeat > 1:
                description = f"{description} (#{repeat})"
            mutants.append(Mutant(module, line, description, text))
    return mutants


# --- running the tests -------------------------------------------------------------------------


def _proc_text(pid: int, name: str) -> bytes:
    try:
        return pathlib.Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""  # gone, or another user's process: not ours to judge


def _left_behind(markers: Sequence[bytes], session: int) -> list[int]:
    """Live pids one pytest run left: in its session, or carrying one of its markers.

    Narrow on purpose: other checkouts run the same tests at the same time under
    /tmp/pytest-of-<user>, so "any process with a root marker under /tmp" would kill theirs.
    Only /proc is read (stdlib only; these packages run on Linux). The session leader (pytest
    itself, an unreaped zombie by now) and other zombies are dead already and are skipped.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in (os.getpid(), session):
            continue
        stat = _proc_text(pid, "stat")
        if not stat or stat.rpartition(b")")[2].split()[:1] == [b"Z"]:
            continue
        try:
            in_session = os.getsid(pid) == session
        except OSError:
            continue
        blob = _proc_text(pid, "cmdline") + b"\0" + _proc_text(pid, "environ")
        if in_session or any(marker in blob for marker in markers):
            found.append(pid)
    return found


def _reap(markers: Sequence[bytes], session: int) -> None:
    """SIGKILL whatever the run left, a few rounds (a dying parent may fork once more)."""
    for _ in range(5):
        pids = _left_behind(markers, session)
        if not pids:
            return
        print(f"  killing {len(pids)} process(es) the run left: {pids}", flush=True)
        for pid in pids:
            with contextlib.suppress(OSError):  # gone since the scan
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    print(f"warning: processes survive SIGKILL: {_left_behind(markers, session)}", flush=True)


def _wait_unreaped(pid: int, timeout: float) -> int | None:
    """`pid`'s exit code once it exits, WITHOUT reaping it; None if still running at `timeout`.

    While it is an unreaped zombie its pid (so its session and process group id) cannot be
    reused, so killing that group and matching that session afterwards never hits a stranger.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if status is not None and status.si_pid == pid:
            return status.si_status if status.si_code == os.CLD_EXITED else -status.si_status
        time.sleep(0.05)
    return None


@dataclass(slots=True)
class Runner:
    """Runs pytest in a fresh session each time and leaves no process behind."""

    workdir: pathlib.Path
    timeout: float = RUN_TIMEOUT_S
    runs: int = 0

    def pytest(self, args: Sequence[str]) -> tuple[int | None, float, pathlib.Path]:
        """(exit code or None on timeout, seconds, log file) of one pytest run."""
        self.runs += 1
        # Not shorter than pytest's own /tmp/pytest-of-<user>/pytest-<n>: a test asserts that a
        # root 800 characters below tmp_path overflows the 2 KiB health payload, with a margin
        # of ten bytes or so at the default length.
        basetemp = self.workdir / "basetemp"
        log = self.workdir / "last.log"
        token = uuid.uuid4().hex
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", TOKEN_VAR: token}
        command = [
            sys.executable,
            "-B",
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            f"--basetemp={basetemp}",
            *args,
        ]
        started = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                code = _wait_unreaped(proc.pid, self.timeout)
            finally:
                # Also on timeout and Ctrl-C. pytest is still unreaped here (see above).
                with contextlib.suppress(OSError):  # the group is empty
                    os.killpg(proc.pid, signal.SIGKILL)
                _reap([str(basetemp).encode(), f"{TOKEN_VAR}={token}".encode()], proc.pid)
                proc.wait()
                shutil.rmtree(basetemp, ignore_errors=True)
        return code, time.monotonic() - started, log


def _drop_bytecode(module: pathlib.Path) -> None:
    """Remove the module's cached .pyc: a mutant of the same size written in the same second
    as a cached one would otherwise run the stale bytecode."""
    for pyc in (module.parent / "__pycache__").glob(f"{module.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


class _Stop(BaseException):
    """SIGINT/SIGTERM/SIGHUP turned into an exception, so every `finally` restores its file."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def judge(mutant: Mutant, target: Target, runner: Runner) -> Outcome:
    """Write the mutant over its module, run the fast tests then the package's, restore."""
    path = ROOT / target.module
    original = path.read_bytes()
    started = time.monotonic()
    try:
        path.write_bytes(mutant.source)
        _drop_bytecode(path)
        stages = [("fast", target.fast)] if target.fast else []
        stages.append(("full", (target.tests,)))
        for stage, args in stages:
            code, _, _ = runner.pytest(args)
            if code is None:
                return Outcome(mutant, "killed", "timeout", time.monotonic() - started)
            if code != 0:
                return Outcome(mutant, "killed", stage, time.monotonic() - started)
        return Outcome(mutant, "survived", "", time.monotonic() - started)
    finally:
        path.write_bytes(original)
        _drop_bytecode(path)


def baseline(target: Target, runner: Runner, passed: set[tuple[str, ...]]) -> str | None:
    """None when the unmutated module passes its tests; else why not (then nothing is judged:
    every mutant would look killed). Selections in `passed` already passed in this run."""
    for args in (target.fast, (target.tests,)):
        if not args or args in passed:
            continue
        code, seconds, log = runner.pytest(args)
        print(f"baseline: pytest {shlex.join(args)} -> {code} in {seconds:.1f} s", flush=True)
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            return f"pytest {shlex.join(args)} -> {code} in {seconds:.1f} s:\n{tail}"
        passed.add(args)
    return None


# --- equivalents, reports ----------------------------------------------------------------------


def load_equivalents(path: pathlib.Path) -> dict[tuple[str, int, str], str]:
    """{(module, line, description): why} from the equivalent-mutant list."""
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())
    return {(e["module"], int(e["line"]), e["description"]): str(e["why"]) for e in entries}


def _score(report: ModuleReport) -> str:
    score = report.score
    return "n/a" if score is None else f"{score:.0%}"


def _per_mutant(report: ModuleReport) -> str:
    seconds = report.seconds_per_mutant
    return "n/a" if seconds is None else f"{seconds:.1f}"


def summary_table(reports: Sequence[ModuleReport]) -> str:
    rows = [
        "| module | mutants | killed (fast / full / timeout) | survived | equivalent | score "
        "| s/mutant |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        by_stage = [sum(1 for o in r.outcomes if o.stage == s) for s in ("fast", "full", "timeout")]
        rows.append(
            f"| `{pathlib.Path(r.target.module).name}` | {len(r.outcomes)} | {r.count('killed')} "
            f"({' / '.join(map(str, by_stage))}) | {r.count('survived')} "
            f"| {r.count('equivalent')} | {_score(r)} | {_per_mutant(r)} |"
        )
    return "\n".join(rows)


def _listing(outcomes: Sequence[Outcome], status: str) -> list[str]:
    return [
        f"- `{o.mutant.module}:{o.mutant.line}` {o.mutant.description}"
        for o in outcomes
        if o.status == status
    ]


def write_doc(
    reports: Sequence[ModuleReport], info: RunInfo, equivalents: dict[tuple[str, int, str], str]
) -> None:
    """Rewrite docs/mutation.md from these verdicts."""
    outcomes = [o for r in reports for o in r.outcomes]
    killed = sum(r.count("killed") for r in reports)
    judged = sum(len(r.outcomes) - r.count("equivalent") for r in reports)
    total = f"{killed}/{judged} = {killed / judged:.0%}" if judged else "n/a"
    lines = [
        "# Mutation testing",
        "",
        "Produced by `uv run nox -s mutation` (which runs `python bench/mutation.py`); it runs",
        "on request, never in the default sessions. Each mutant changes one AST node of one",
        "module: comparison `==`/`!=`, `<`/`<=`, `>`/`>=`, `in`/`not in`, `is`/`is not`;",
        "`and`/`or`; `not x` → `x`; an `if` test → `True` and → `False`; `raise` → `pass`;",
        "`return x` → `return None` outside `-> None` functions; a number c → c+1 with 0 ↔ 1;",
        "`True` ↔ `False`. Never in docstrings, annotations, decorators, f-strings or",
        "`if TYPE_CHECKING`. The mutant is written over the module file, the module's fast tests",
        "run (`pytest -x`), then, if they pass, the package's whole test directory; a failing run",
        f"or one past the {info.timeout:.0f} s cap kills it. The module file is restored after",
        "every mutant and checked byte-for-byte against a kept copy at the end.",
        "",
        f"- command: `{info.command}`",
        f"- date: {info.date}",
        f"- total: {total} killed, {info.runs} pytest runs, {info.seconds / 60:.1f} min wall",
        "- score = killed / (mutants - equivalent); s/mutant = wall seconds per judged mutant",
        "- raw verdicts: `docs/mutation-results.json`",
    ]
    if info.rescored:
        lines.append(
            f"- rescored {info.rescored} against the current bench/mutation_equivalent.json "
            "(`--rescore`: no test rerun; survivors listed there became equivalent)"
        )
    lines += [
        "",
        summary_table(reports),
        "",
    ]
    for r in reports:
        survivors = _listing(r.outcomes, "survived")
        lines += [f"## `{r.target.module}`", ""]
        if r.judged:
            lines += [f"- judged: {r.judged}"]
        lines += [f"- fast tests: `{shlex.join(r.target.fast) or '(none)'}`"]
        lines += [f"- then: `{r.target.tests}`", ""]
        lines += [f"Survivors ({len(survivors)}):", ""] + (survivors or ["- none"]) + [""]
    used = [o for o in outcomes if o.status == "equivalent"]
    lines += ["## Equivalent mutants (excluded from the score)", ""]
    lines += [
        f"- `{o.mutant.module}:{o.mutant.line}` {o.mutant.description} — "
        f"{equivalents.get(o.mutant.key, '(no longer listed; rerun to judge it)')}"
        for o in used
    ] or ["- none"]
    stale = [e for r in reports for e in r.stale_equivalents]
    if stale:
        lines += ["", "Entries in bench/mutation_equivalent.json no mutant matches any more:", ""]
        lines += [f"- `{e['module']}:{e['line']}` {e['description']}" for e in stale]
    DOC.write_text("\n".join(lines) + "\n")
    print(f"wrote {DOC.relative_to(ROOT)}", flush=True)


def save_results(reports: Sequence[ModuleReport], info: RunInfo) -> None:
    data = {
        "run": {
            "command": info.command,
            "date": info.date,
            "seconds": round(info.seconds, 1),
            "runs": info.runs,
            "timeout": info.timeout,
        },
        "modules": [
            {
                "module": r.target.module,
                "judged": r.judged,
                "tests": r.target.tests,
                "fast": list(r.target.fast),
                "outcomes": [
                    {
                        "line": o.mutant.line,
                        "description": o.mutant.description,
                        "status": o.status,
                        "stage": o.stage,
                        "seconds": round(o.seconds, 1),
                    }
                    for o in r.outcomes
                ],
            }
            for r in reports
        ],
    }
    RESULTS.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}", flush=True)


def load_results() -> tuple[list[ModuleReport], RunInfo]:
    if not RESULTS.exists():
        return [], RunInfo("", "", 0.0, 0, RUN_TIMEOUT_S)
    data = json.loads(RESULTS.read_text())
    run = data["run"]
    info = RunInfo(run["command"], run["date"], run["seconds"], run["runs"], run["timeout"])
    reports = []
    for m in data["modules"]:
        report = ModuleReport(
            Target(m["module"], m["tests"], tuple(m["fast"])), judged=m.get("judged", "")
        )
        report.outcomes = [
            Outcome(
                Mutant(m["module"], o["line"], o["description"], b""),
                o["status"],
                o["stage"],
                o["seconds"],
            )
            for o in m["outcomes"]
        ]
        reports.append(report)
    return reports, info


def rescore(report: ModuleReport, equivalents: dict[tuple[str, int, str], str]) -> None:
    """Survivors now listed as equivalent become equivalent. A listed mutant the tests killed
    stays killed: the tests proved it is not equivalent, so the list is wrong."""
    for outcome in report.outcomes:
        if outcome.mutant.key not in equivalents:
            continue
        if outcome.status == "survived":
            outcome.status, outcome.stage = "equivalent", ""
        elif outcome.status == "killed":
            print(f"warning: listed as equivalent but killed: {outcome.mutant.key}", flush=True)
    report.stale_equivalents = _stale(report.target, equivalents)


def _stale(target: Target, equivalents: dict[tuple[str, int, str], str]) -> list[dict[str, object]]:
    """Equivalent-list entries for `target` that its current source no longer produces."""
    keys = {m.key for m in generate(target.module)}
    return [
        {"module": k[0], "line": k[1], "description": k[2]}
        for k in equivalents
        if k[0] == target.module and k not in keys
    ]


# --- the command -------------------------------------------------------------------------------


def _selected(targets: Sequence[Target], names: Sequence[str]) -> list[Target]:
    """Targets whose module matches a --module name: `_retire`, `_retire.py` or a path."""
    if not names:
        return list(targets)
    chosen = [
        t
        for t in targets
        if any(n in (pathlib.Path(t.module).stem, pathlib.Path(t.module).name) for n in names)
        or any(t.module.endswith(n) for n in names)
    ]
    if not chosen:
        raise SystemExit(f"no target module matches {list(names)}")
    return chosen


def run_module(
    target: Target,
    mutants: Sequence[Mutant],
    equivalents: dict[tuple[str, int, str], str],
    runner: Runner,
    kept: dict[tuple[str, int, str], Outcome] | None = None,
) -> ModuleReport:
    """Judge every mutant, except those with a verdict in ``kept`` (reused as it stands)."""
    report = ModuleReport(target, stale_equivalents=_stale(target, equivalents))
    for number, mutant in enumerate(mutants, 1):
        where = f"[{number}/{len(mutants)}] {pathlib.Path(mutant.module).name}:{mutant.line}"
        if mutant.key in equivalents:
            report.outcomes.append(Outcome(mutant, "equivalent"))
            print(f"{where} {mutant.description}: equivalent", flush=True)
            continue
        if kept is not None and mutant.key in kept:
            report.outcomes.append(replace(kept[mutant.key], mutant=mutant))
            continue
        outcome = judge(mutant, target, runner)
        report.outcomes.append(outcome)
        how = f" ({outcome.stage})" if outcome.stage else ""
        print(
            f"{where} {mutant.description}: {outcome.status}{how} {outcome.seconds:.1f} s",
            flush=True,
        )
    return report


def print_report(report: ModuleReport) -> None:
    print(f"\n== {report.target.module} ==", flush=True)
    print(summary_table([report]))
    for line in _listing(report.outcomes, "survived"):
        print("survived:", line.removeprefix("- "))
    for entry in report.stale_equivalents:
        print(f"stale equivalent entry: {entry}")
    print(flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", default=[], help="only this module (repeat)")
    parser.add_argument("--max-mutants", type=int, help="only the first N mutants of each module")
    parser.add_argument("--list", action="store_true", help="print the mutants; run nothing")
    parser.add_argument("--timeout", type=float, default=RUN_TIMEOUT_S, help="s per pytest run")
    parser.add_argument("--equivalent", type=pathlib.Path, default=EQUIVALENT_FILE)
    parser.add_argument(
        "--retry-survivors",
        action="store_true",
        help=f"judge only the mutants {RESULTS.name} does not show killed by a test",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help=f"run nothing: apply the equivalent list to {RESULTS.name} and rewrite the doc",
    )
    args = parser.parse_args(argv)

    equivalents = load_equivalents(args.equivalent)
    if args.rescore:
        judged, info = load_results()
        for report in judged:
            rescore(report, equivalents)
            print_report(report)
        write_doc(judged, replace(info, rescored=_now()), equivalents)
        return 0
    targets = _selected(DEFAULT_TARGETS, args.module)
    plan = [(t, generate(t.module)[: args.max_mutants]) for t in targets]
    previous, _ = load_results()
    kept = _kept_verdicts(previous, plan) if args.retry_survivors else {}
    if args.list:
        for target, mutants in plan:
            print(f"== {target.module}: {len(mutants)} mutants ==")
            for m in mutants:
                mark = " [equivalent]" if m.key in equivalents else ""
                print(f"{m.module}:{m.line} {m.description}{mark}")
        return 0

    # Keep a copy of every original outside the tree before touching anything: if this process
    # is killed with SIGKILL mid-mutant, the copy is where the original still is.
    originals = {t.module: (ROOT / t.module).read_bytes() for t in targets}
    # Installed even where SIGINT arrived ignored (a background job of a script): stopping
    # must always go through the `finally` blocks that restore the module files.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="kitty-mutation-"))
    backup = workdir / "originals"
    for module, data in originals.items():
        (backup / module).parent.mkdir(parents=True, exist_ok=True)
        (backup / module).write_bytes(data)
    print(f"originals kept in {backup} until the end", flush=True)
    runner = Runner(workdir, timeout=args.timeout)
    command = shlex.join(["python", "bench/mutation.py", *(argv or sys.argv[1:])])
    reports: list[ModuleReport] = []
    started = time.monotonic()
    failed = False
    passed: set[tuple[str, ...]] = set()
    try:
        for target, mutants in plan:
            broken = baseline(target, runner, passed)
            if broken is not None:
                print(f"baseline of {target.module} fails; skipped:\n{broken}", flush=True)
                failed = True
                continue
            report = run_module(target, mutants, equivalents, runner, kept.get(target.module))
            report.judged = f"{_now()} by `{command}`"
            print_report(report)
            reports.append(report)
            # Saved after every module: a run stopped later keeps what it judged.
            info = RunInfo(command, _now(), time.monotonic() - started, runner.runs, args.timeout)
            merged = _merged(previous, reports)
            save_results(merged, info)
            write_doc(merged, info, equivalents)
    finally:
        failed = not _verify_restored(originals, backup) or failed
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def _kept_verdicts(
    previous: Sequence[ModuleReport], plan: Sequence[tuple[Target, Sequence[Mutant]]]
) -> dict[str, dict[tuple[str, int, str], Outcome]]:
    """Per module: the saved kills by a failing test, to reuse; every other mutant (survived,
    killed by a timeout - a loaded machine is not a test - or never judged, as after a stopped
    run) is judged again. Tests are only ever added between the runs, so a killed mutant stays
    killed - but only while the module is unchanged: a saved verdict naming a mutant the module
    no longer produces means it changed, and it must be judged afresh (SystemExit says so)."""
    kept: dict[str, dict[tuple[str, int, str], Outcome]] = {}
    by_module = {r.target.module: r for r in previous}
    for target, mutants in plan:
        report = by_module.get(target.module)
        if report is None:
            raise SystemExit(f"--retry-survivors: no saved verdicts for {target.module}")
        keys = {m.key for m in mutants}
        saved = {o.mutant.key: o for o in report.outcomes}
        if not set(saved) <= keys:
            raise SystemExit(
                f"--retry-survivors: {target.module} changed since its verdicts were saved; "
                "judge it afresh (--module without --retry-survivors)"
            )
        kept[target.module] = {
            k: o for k, o in saved.items() if o.status == "killed" and o.stage != "timeout"
        }
    return kept


def _merged(
    previous: Sequence[ModuleReport], current: Sequence[ModuleReport]
) -> list[ModuleReport]:
    """This run's reports, plus the saved ones of modules it did not judge, in target order."""
    fresh = {r.target.module: r for r in current}
    old = {r.target.module: r for r in previous if r.target.module not in fresh}
    order = [t.module for t in DEFAULT_TARGETS]
    everything = {**old, **fresh}
    return sorted(
        everything.values(),
        key=lambda r: order.index(r.target.module) if r.target.module in order else len(order),
    )


def _verify_restored(originals: dict[str, bytes], backup: pathlib.Path) -> bool:
    """Every module byte-for-byte as before the run (rewritten from the copy if not)."""
    intact = True
    for module, data in originals.items():
        path = ROOT / module
        if path.read_bytes() != data or (backup / module).read_bytes() != data:
            print(f"error: {module} was not restored; rewriting it from the kept copy", flush=True)
            path.write_bytes(data)
            intact = False
        _drop_bytecode(path)
    if intact:
        print("module files verified byte-for-byte against the originals", flush=True)
    return intact


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except _Stop as stop:
        # The files are restored and checked by now (main's `finally`); no doc for a part-run.
        print(f"stopped by signal {stop.args[0]}; docs/mutation.md not written", file=sys.stderr)
        raise SystemExit(128 + int(stop.args[0])) from None
