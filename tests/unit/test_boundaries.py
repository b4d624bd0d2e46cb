"""The service boundaries, checked on every run (contracts in .importlinter).

Services talk only through events (docs/architecture.md, "One Django project,
one app per service"): an import from one service app into another would
let them share state behind the broker's back, and one from the messaging
machinery into a service would tie every service to that one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
