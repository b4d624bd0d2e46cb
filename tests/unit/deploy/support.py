"""What the deploy/ files are checked against: the metrics the code exports, promtool."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import Counter, Gauge, Histogram

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


# First-party code: where every environment variable the system honours is read. (Issue 13 moves
# them all into shopsite/settings.py; scanning everything keeps this right before and after.)
SOURCE_DIRS = ("shopsite", "orders", "inventory", "payment", "shipping", "readmodel")
# Read by libraries, not by our code: prometheus-client (multi-process mode) and Django.
LIBRARY_ENVIRONMENT = frozenset({"PROMETHEUS_MULTIPROC_DIR", "DJANGO_SETTINGS_MODULE"})


def _is_environ(node: ast.expr) -> bool:
    """`os.environ`, or a parameter standing for it (`environ`, `env`: databases.py, services.py)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id in {"environ", "env"}


def environment_names_read() -> set[str]:
    """Names of the environment variables the code reads: os.environ.get / [...] / setdefault, getenv."""
    names: set[str] = set(LIBRARY_ENVIRONMENT)
    files = [ROOT / "manage.py", *(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            key: ast.expr | None = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                if node.func.attr in {"get", "setdefault", "pop"} and _is_environ(node.func.value):
                    key = node.args[0]
                elif node.func.attr == "getenv":
                    key = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names
