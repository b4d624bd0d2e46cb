"""One real stack for the fault cases (broker, Redis, daphne, two workers, beat), stopped by PID at the end.

Cases share it to keep `make test` short; each case measures only its own
orders (stock conservation is global and must hold at every check). After
each case whatever is dead is started again, so one failing case does not
cascade into the next; the case itself has already asserted on what the
stack did by itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.faults.harness import FaultStack


@pytest.fixture(scope="package")
def faults() -> Iterator[FaultStack]:
    running = FaultStack()
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _repair_after_case(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "faults" in request.fixturenames:
        running: FaultStack = request.getfixturevalue("faults")
        running.repair()
