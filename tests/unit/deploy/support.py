"""What the deploy/ files are checked against: the metrics the code exports, promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import Counter, Gauge, Histogram

from shopsite import config
from shopsite.events import metrics
from shopsite.ops import middleware

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
METRIC_NAME = re.compile(r"\bshopsite_[a-z_]+\b")


def exported_series_names() -> set[str]:
    """Every series name /metrics can show, from the metric objects of the modules that define them:
    the messaging metrics (shopsite/events/metrics.py) and the web layer's HTTP metrics (its middleware)."""
    names: set[str] = set()
    for obj in [*vars(metrics).values(), *vars(middleware).values()]:
        if not isinstance(obj, (Counter, Gauge, Histogram)):
            continue
        (family,) = obj.describe()
        if isinstance(obj, Counter):
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif isinstance(obj, Histogram):
            names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum", "created")}
        else:
            names.add(family.name)
    return names


def metric_names_in(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def promtool(*args: str, cwd: Path = DEPLOY / "prometheus") -> subprocess.CompletedProcess[str]:
    """Run promtool; fails (never skips) when it is missing: `make promtool` installs it."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run `make promtool` (Debian's prometheus package)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# Read by a library, not through shopsite/config.py: Django (which settings module to load).
LIBRARY_ENVIRONMENT = frozenset({"DJANGO_SETTINGS_MODULE"})


def environment_names_read() -> set[str]:
    """Names of the environment variables the system honours: the fields of shopsite/config.py
    (the only reader of os.environ, tests/unit/test_config.py), and what libraries read."""
    return set(config.ENVIRONMENT_NAMES | LIBRARY_ENVIRONMENT)
