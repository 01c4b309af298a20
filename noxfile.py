"""The one place that knows how to test kitty.

Every session gets its own uv-managed venv filled with `uv sync --locked`, so a package's tests
run with exactly its declared dependencies (an undeclared import of a sibling fails there).

`uv run --group dev nox` (what `.ci/run` calls) runs the default sessions; `bench`, `demo` and
`mutation` (AST mutation testing of the guard and decision modules, bench/mutation.py) run on
request.
Each pytest run writes JUnit XML to `.ci/reports/` so `.ci/run` can print one summary line.

Every Python the packages claim (PYTHONS) runs the unit tests and `standalone_filelock`;
coverage is measured once, on the floor version. A claimed version with no interpreter on this
machine is skipped, named ("Python interpreter 3.13 not found"), never downloaded.
`.ci/run` runs the default sessions in two lanes at once, one per core, by their tag: LANE_BESIDE
(the I/O-bound integration matrices, then the newest Python's runs) beside LANE_MAIN (the rest).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
# A claimed Python missing here is skipped with its name (see PYTHONS), not an error.
nox.options.error_on_missing_interpreters = False
nox.options.sessions = [
    "lint",
    "typecheck",
    "typecheck_tooling",
    "tests",
    "standalone_filelock",
    "wheels",
    "integration",
]

ROOT = pathlib.Path(__file__).parent
REPORTS = ROOT / ".ci" / "reports"
PACKAGES = {
    "kitty-filelock": "kitty_filelock",
    "kitty-auth-refresh": "kitty_auth_refresh",
    "kitty-daemon-identity": "kitty_daemon_identity",
    "kitty-orphan-sweep": "kitty_orphan_sweep",
    "kitty-doctor-cli": "kitty_doctor",
}
DIST_NAMES = sorted(PACKAGES)
#: Every Python the packages claim (requires-python >=3.11, classifiers up to 3.13).
PYTHONS = ("3.11", "3.12", "3.13")
#: Where coverage is measured (once: the same code on a newer interpreter adds no lines).
COVERAGE_PYTHON = PYTHONS[0]
LANE_MAIN = "lane-main"
LANE_BESIDE = "lane-beside-integration"


#: Unit suites that bind fixed loopback ports (daemon-identity 20100-20199, orphan-sweep
#: 20200-20399, doctor 20400-20599): two runs of one of them at once would see each other's
#: daemons, so all Pythons of such a package share one lane.
_FIXED_PORT_SUITES = ("kitty-daemon-identity", "kitty-orphan-sweep", "kitty-doctor-cli")
#: The suites that go beside the integration matrices (which mostly wait on subprocesses).
_BESIDE_SUITES = ("kitty-doctor-cli",)


def _lane(package: str, python: str) -> str:
    if package in _BESIDE_SUITES:
        return LANE_BESIDE
    if package in _FIXED_PORT_SUITES or python != PYTHONS[-1]:
        return LANE_MAIN
    return LANE_BESIDE


def _unit_runs() -> list[nox.param]:
    """(package, python) over DIST_NAMES x PYTHONS, each tagged with its lane; kitty-filelock's
    suite runs here on COVERAGE_PYTHON only: `standalone_filelock` runs it on every Python, from
    the wheel alone (the stricter install), so a second run per Python would add nothing."""
    return [
        nox.param(package, python, tags=[_lane(package, python)])
        for python in PYTHONS
        for package in DIST_NAMES
        if package != "kitty-filelock" or python == COVERAGE_PYTHON
    ]


def _per_python() -> list[nox.param]:
    """The `python` parameter over PYTHONS; the newest one's run goes in the lane beside the
    integration matrices."""
    return [
        nox.param(version, tags=[LANE_BESIDE if version == PYTHONS[-1] else LANE_MAIN])
        for version in PYTHONS
    ]


def _sync(session: nox.Session, *args: str) -> None:
    """Fill this session's venv from uv.lock (exact: anything not asked for is removed)."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def _junit(name: str) -> str:
    REPORTS.mkdir(parents=True, exist_ok=True)
    return f"--junitxml={REPORTS / name}.xml"


@nox.session(tags=[LANE_MAIN])
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    _sync(session, "--only-group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=[LANE_MAIN])
@nox.parametrize("package", DIST_NAMES)
def typecheck(session: nox.Session, package: str) -> None:
    """mypy --strict over one package's sources and tests, in that package's own venv."""
    _sync(session, "--package", package, "--group", "typecheck")
    pkg_dir = ROOT / "packages" / package
    session.run(
        "python",
        "-m",
        "mypy",
        "--strict",
        str(pkg_dir / "src"),
        str(pkg_dir / "tests"),
        env={"MYPYPATH": str(pkg_dir / "src")},
    )


@nox.session(tags=[LANE_MAIN])
def typecheck_tooling(session: nox.Session) -> None:
    """mypy --strict over the code that is not a package: integration tests, benchmarks, noxfile
    and the example app."""
    _sync(
        session,
        "--all-packages",
        "--group",
        "typecheck",
        "--group",
        "integration",
        "--group",
        "bench",
        "--group",
        "dev",
    )
    session.run("python", "-m", "mypy", "--strict", "tests-integration", "bench", "noxfile.py")
    # The example app is not a workspace member: checked as sources, with its own import roots.
    example = ROOT / "examples" / "acme"
    session.run(
        "python", "-m", "mypy", "--strict", str(example / "src"), str(example / "tests"),
        env={"MYPYPATH": f"{example / 'src'}{os.pathsep}{example / 'tests'}"},
    )  # fmt: skip


@nox.session
@nox.parametrize(("package", "python"), _unit_runs())
def tests(session: nox.Session, package: str) -> None:
    """One package's unit tests in its own venv on one claimed Python; on COVERAGE_PYTHON with
    line+branch coverage >= 90 %."""
    _sync(session, "--package", package, "--group", "test")
    pkg_dir = ROOT / "packages" / package
    coverage: list[str] = []
    env: dict[str, str] = {}
    if session.python == COVERAGE_PYTHON:
        coverage = [
            f"--cov={PACKAGES[package]}",
            "--cov-branch",
            "--cov-report=term-missing:skip-covered",
            "--cov-fail-under=90",
        ]
        env["COVERAGE_FILE"] = str(pathlib.Path(session.create_tmp()) / ".coverage")
    session.run(
        "python",
        "-m",
        "pytest",
        str(pkg_dir / "tests"),
        *coverage,
        _junit(f"tests-{package}-py{session.python}"),
        *session.posargs,
        env=env,
    )


def _build(session: nox.Session, out: pathlib.Path, *packages: str) -> list[pathlib.Path]:
    """Build wheels with --no-sources so sibling ranges are what a PyPI user would resolve."""
    for package in packages:
        session.run(
            "uv",
            "build",
            "--no-sources",
            "--package",
            package,
            "--wheel",
            "--out-dir",
            str(out),
            external=True,
        )
    return sorted(out.glob("*.whl"))


_TEST_TOOLS = ("pytest", "pytest-timeout", "pytest-asyncio", "hypothesis", "psutil")
_NOBODY = 65534


def _lone_filelock_venv(
    session: nox.Session, venv: pathlib.Path, wheel: pathlib.Path, python: str | None = None
) -> str:
    """A venv holding the kitty-filelock wheel and nothing else (checked), then the test tools."""
    session.run(
        "uv", "venv", "--quiet", *(["--python", python] if python else []), str(venv),
        external=True,
    )  # fmt: skip
    py = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    session.run("uv", "pip", "install", "--quiet", "--python", py, str(wheel), external=True)
    check = (
        "import importlib.metadata as m, json;"
        "d = m.distribution('kitty-filelock');"
        "others = sorted(x.metadata['Name'] for x in m.distributions());"
        "print(json.dumps({'requires': d.requires, 'dists': others}))"
    )
    out = session.run(py, "-P", "-c", check, silent=True, external=True)
    facts = json.loads(str(out).strip().splitlines()[-1])
    if facts["requires"]:
        session.error(f"kitty-filelock declares runtime dependencies: {facts['requires']}")
    if facts["dists"] != ["kitty-filelock"]:
        session.error(f"standalone venv holds more than kitty-filelock: {facts['dists']}")
    # Only now add the test tools (never kitty packages).
    session.run("uv", "pip", "install", "--quiet", "--python", py, *_TEST_TOOLS, external=True)
    return py


def _filelock_pytest(py: str, *extra: str) -> list[str]:
    # -P: nothing from the source tree shadows the installed wheel.
    return [
        py, "-P", "-m", "pytest", "-p", "no:cacheprovider",
        str(ROOT / "packages" / "kitty-filelock" / "tests"),
        "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), *extra,
    ]  # fmt: skip


@nox.session
@nox.parametrize("python", _per_python())
def standalone_filelock(session: nox.Session) -> None:
    """kitty-filelock installs ALONE (no Requires-Dist) and its tests pass with only it present,
    on one claimed Python (nox's own venv for the session only provides that interpreter); as
    root, on COVERAGE_PYTHON's run, they also run once as an unprivileged user (`setpriv`), so
    root's bypass of file permissions hides no bug."""
    version = str(session.python)
    work = pathlib.Path(tempfile.mkdtemp(prefix="kitty-standalone-"))
    try:
        (wheel,) = _build(session, work / "dist", "kitty-filelock")
        py = _lone_filelock_venv(session, work / "venv", wheel, version)
        session.run(
            *_filelock_pytest(py, _junit(f"standalone-filelock-py{version}")), external=True
        )
        # The second-uid facts (root, setpriv, an interpreter `nobody` can run) have one home,
        # the integration harness (stdlib only, so importable here).
        sys.path.insert(0, str(ROOT / "tests-integration"))
        from _harness import as_user, second_user_python

        nobody_python = second_user_python()
        if nobody_python is not None and version == COVERAGE_PYTHON:
            # The user's venv must be readable by that user: the system interpreter (root's
            # own may live under a private /root) in a world-readable directory.
            shared = pathlib.Path(tempfile.mkdtemp(prefix="kitty-standalone-nobody-"))
            try:
                shared.chmod(0o755)
                npy = _lone_filelock_venv(session, shared / "venv", wheel, nobody_python)
                subprocess.run(["chmod", "-R", "a+rX", str(shared)], check=True)
                (shared / "tmp").mkdir()
                os.chown(shared / "tmp", _NOBODY, _NOBODY)
                session.run(
                    *as_user(_NOBODY),
                    *_filelock_pytest(npy, "--basetemp", str(shared / "tmp" / "pytest")),
                    env={
                        "HOME": str(shared / "tmp"),
                        "HYPOTHESIS_STORAGE_DIRECTORY": str(shared / "tmp" / "hypothesis"),
                    },
                    external=True,
                )
            finally:
                shutil.rmtree(shared, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@nox.session(venv_backend="none", tags=[LANE_MAIN])
def wheels(session: nox.Session) -> None:
    """Build every package with --no-sources and install them together: validates sibling ranges.

    Then the example app (examples/acme, another team's CLI) is built and installed from those
    wheels, never from the workspace, and its tests run there: its brand test greps everything
    its users see for "kitty".
    """
    # A neutral temp prefix: the example's brand test must not find kitty in its own venv path.
    work = pathlib.Path(tempfile.mkdtemp(prefix="wheels-"))
    try:
        built = _build(session, work / "dist", *DIST_NAMES)
        if len(built) != len(DIST_NAMES):
            session.error(f"expected {len(DIST_NAMES)} wheels, built {[w.name for w in built]}")
        venv = work / "venv"
        session.run("uv", "venv", "--quiet", str(venv), external=True)
        py = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
        # --find-links + --no-index for kitty names would block third-party deps; instead install
        # the wheels by path and let the resolver fetch third-party deps and check sibling ranges.
        session.run(
            "uv", "pip", "install", "--quiet", "--python", py, *map(str, built), external=True
        )
        session.run(py, "-P", "-c", "import " + ", ".join(PACKAGES.values()), external=True)
        example = ROOT / "examples" / "acme"
        session.run(
            "uv", "build", "--wheel", "--out-dir", str(work / "example"), str(example),
            external=True,
        )  # fmt: skip
        session.run(
            "uv", "pip", "install", "--quiet", "--python", py, *map(str, built),
            *map(str, (work / "example").glob("*.whl")), "pytest", "pytest-timeout",
            external=True,
        )  # fmt: skip
        session.run(
            py, "-m", "pytest", str(example / "tests"), "-p", "no:cacheprovider",
            "--timeout=120", _junit("example-acme"),
            external=True,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


@nox.session(tags=[LANE_BESIDE])
def integration(session: nox.Session) -> None:
    """Live-subprocess matrices: real daemons, real lock holders, a real Authlib OAuth server
    and panva's oidc-provider (node; installed here from its package-lock.json)."""
    _sync(session, "--all-packages", "--group", "test", "--group", "integration")
    provider = ROOT / "tests-integration" / "oidc_provider"
    if not (provider / "node_modules").is_dir():
        if shutil.which("npm"):
            # npm ci: exactly the lockfile's versions; a failure fails the session.
            session.run(
                "npm", "ci", "--prefix", str(provider), "--no-audit", "--no-fund", external=True
            )
        else:
            session.warn("npm not found: the oidc-provider tests will be skipped")
    session.run(
        "python",
        "-m",
        "pytest",
        str(ROOT / "tests-integration"),
        "-p",
        "no:randomly",
        _junit("integration"),
        *session.posargs,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (never tests): prints tables and rewrites docs/benchmarks.md."""
    _sync(
        session, "--all-packages", "--group", "test", "--group", "integration", "--group", "bench"
    )
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs)


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing (on request): rewrites docs/mutation.md; `-- --module _retire` etc."""
    _sync(session, "--all-packages", "--group", "test")
    session.run("python", str(ROOT / "bench" / "mutation.py"), *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The newcomer's tour (INT-09): a messy home, kitty-doctor, --reset, clean."""
    _sync(session, "--all-packages", "--group", "test", "--group", "integration")
    session.run("python", str(ROOT / "tests-integration" / "demo.py"), *session.posargs)
