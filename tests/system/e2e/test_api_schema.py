"""Schema fuzzing: schemathesis against the running system, on a stack of its own.

Its own stack because fuzzing sets stock and simulator settings to whatever
it generates, which the shared stack's saga tests must not see. The run
prints how many cases it generated per operation; the report lands in
test-artifacts/schemathesis/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from shopsite.supervisor import Stack, StackConfig
from tests.system.e2e.conftest import ROOT, manage

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

# Enough to reach every operation with valid and invalid data, while the
# suite stays within its time budget on two cores.
MAX_EXAMPLES = int(os.environ.get("SHOPSITE_FUZZ_EXAMPLES", "30"))
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def fuzz_stack(request: pytest.FixtureRequest) -> Stack:
    artifacts = ROOT / "test-artifacts" / f"schemathesis-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    running = Stack(StackConfig(base_dir=ROOT, var_dir=artifacts / "var", port=0, force_embedded_redis=True,
                                log_dir=artifacts / "logs"))
    request.addfinalizer(running.stop)
    running.start(timeout=120)
    return running


def _token(stack: Stack) -> str:
    proc = manage(stack, "issue_ops_token", "schemathesis")
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("{")][-1].strip()


def test_served_schema_is_valid_openapi_3_1(fuzz_stack: Stack) -> None:
    schema = httpx.get(f"{fuzz_stack.url}/api/schema", timeout=10).json()
    OpenAPIV31SpecValidator(schema).validate()
    assert httpx.get(f"{fuzz_stack.url}/api/docs", timeout=10).status_code == 200


def test_fuzzing_finds_no_server_error_and_no_schema_violation(fuzz_stack: Stack) -> None:
    report_dir = ROOT / "test-artifacts" / "schemathesis"
    report_dir.mkdir(parents=True, exist_ok=True)
    junit = report_dir / "junit.xml"
    st = Path(sys.executable).with_name("st")
    proc = subprocess.run(
        [str(st), "run", f"{fuzz_stack.url}/api/schema", "--checks", CHECKS,
         "--header", f"Authorization: Bearer {_token(fuzz_stack)}",
         "--max-examples", str(MAX_EXAMPLES), "--seed", "20261124",
         # One worker: CPython 3.11's ast.parse, which hypothesis calls to describe strategies, is not
         # thread-safe ("AST constructor recursion depth mismatch" with two).
         "--workers", "1",
         "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
         "--report", "junit,ndjson", "--report-junit-path", str(junit),
         "--report-ndjson-path", str(report_dir / "events.ndjson"), "--no-color"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    (report_dir / "output.txt").write_text(proc.stdout + proc.stderr)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
