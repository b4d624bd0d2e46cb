"""`make test`: the suite on SQLite, then the backend suite on PostgreSQL and on MongoDB (mongomock).

    python tests/run_backends.py [pytest args...]
    SHOPSITE_TEST_BACKENDS=postgres python tests/run_backends.py -x

One pytest process per backend, one after another (the machine has two
cores and the e2e stack is heavy):

* every backend runs the whole suite (tests/unit, service, integration, system);
  each test module declares the backends it runs on (pytestmark =
  pytest.mark.backends(...)) and tests/conftest.py deselects the rest. Today:
* sqlite     everything
* postgres   unit, service (incl. the PostgreSQL-only concurrency tests), the
             relay against a real broker, and the system's happy path
* mongomock  unit, service and the relay: one in-process fake server cannot be
             shared by the system's processes

A backend that cannot run fails the whole run, loudly: no skipped backend
hides in a green result. Exits non-zero if any run failed; the last line is
the total over all runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shopsite import config, databases, pgadmin  # noqa: E402 - Django-free
from shopsite.supervisor import STACK_DATABASE_PREFIX  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"

# backend -> pytest marker expression. The full-size fault cases (marked slow) are
# `make faults`, not `make test`; so is the fault suite on PostgreSQL (it declares
# PostgreSQL for `SHOPSITE_DB=postgres make faults`).
RUNS: dict[str, str | None] = {
    databases.SQLITE: "not slow",
    databases.POSTGRES: "not slow and not faults",
    databases.MONGOMOCK: "not slow",
}


@dataclass
class Outcome:
    backend: str
    exit_code: int
    seconds: float
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.problem


def count_results(junit: Path, outcome: Outcome) -> None:
    if not junit.exists():
        return
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        outcome.passed += tests - skipped - failed
        outcome.failed += failed
        outcome.skipped += skipped


def postgres_problem(env: dict[str, str]) -> str:
    """Why PostgreSQL cannot be used, or ''."""
    url = config.from_environ(env).database_url
    try:
        pgadmin.existing(pgadmin.Server.from_url(url))
    except Exception as exc:  # noqa: BLE001 - reported, and the run fails
        return f"PostgreSQL at {databases.redact(url)} is not reachable ({type(exc).__name__}: {exc})"
    return ""


def leftover_stack_databases(env: dict[str, str], pytest_pid: int) -> list[str]:
    """Databases a stack of this pytest process created and did not drop (dropped now)."""
    server = pgadmin.Server.from_url(config.from_environ(env).database_url)
    left = pgadmin.existing(server, f"{STACK_DATABASE_PREFIX}{pytest_pid}_")
    if left:
        pgadmin.drop(server, left)
    return left


def run(backend: str, marker: str | None, pytest_args: list[str]) -> Outcome:
    # The test settings (pytest.ini names them) must win over the DJANGO_SETTINGS_MODULE that
    # importing shopsite above set in this process's environment (shopsite/celery.py's setdefault).
    env = {**os.environ, "SHOPSITE_DB": backend, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    print(f"\n{'=' * 30} SHOPSITE_DB={backend} {'=' * 30}", flush=True)
    started = time.monotonic()
    if backend == databases.POSTGRES and (problem := postgres_problem(env)):
        print(f"FAILED before running: {problem}", flush=True)
        return Outcome(backend, 1, 0.0, problem=problem)
    junit = ARTIFACTS / f"junit-{backend}.xml"
    junit.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pytest", f"--junitxml={junit}", *(["-m", marker] if marker else []), *pytest_args]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)
    code = proc.wait()
    outcome = Outcome(backend, code, time.monotonic() - started)
    count_results(junit, outcome)
    if backend == databases.POSTGRES and (left := leftover_stack_databases(env, proc.pid)):
        outcome.problem = f"tests left databases behind (now dropped): {', '.join(left)}"
    return outcome


def main(pytest_args: list[str]) -> int:
    ARTIFACTS.mkdir(exist_ok=True)
    wanted = [b.strip() for b in os.environ.get("SHOPSITE_TEST_BACKENDS", ",".join(RUNS)).split(",") if b.strip()]
    unknown = [b for b in wanted if b not in RUNS]
    if unknown:
        print(f"SHOPSITE_TEST_BACKENDS: unknown {unknown}; known: {list(RUNS)}", file=sys.stderr)
        return 2
    outcomes = [run(backend, RUNS[backend], pytest_args) for backend in wanted]

    print(f"\n{'=' * 30} make test: every backend {'=' * 30}")
    for o in outcomes:
        status = "ok" if o.ok else f"FAILED (pytest exit {o.exit_code})"
        print(f"  {o.backend:<10} {o.passed:>4} passed {o.failed:>3} failed {o.skipped:>3} skipped"
              f"  {o.seconds:6.1f} s  {status}")
        if o.problem:
            print(f"             {o.problem}")
    total_passed, total_failed = sum(o.passed for o in outcomes), sum(o.failed for o in outcomes)
    # A run that failed without a failing test (backend unreachable, no test collected) still counts.
    total_failed += sum(1 for o in outcomes if not o.ok and o.failed == 0)
    skipped = sum(o.skipped for o in outcomes)
    print(f"total: {total_passed} passed, {total_failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
