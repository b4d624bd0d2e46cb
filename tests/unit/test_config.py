"""The settings object (shopsite/config.py): parsing, validation, the one reader of the environment,
and the README's table of switches, which must list exactly its fields with their defaults."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shopsite import config
from shopsite.config import Config, ConfigError, from_environ

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

ROOT = Path(__file__).resolve().parent.parent.parent

# Project code: everything but the tests (which build environments for the processes they start).
SCANNED = ("shopsite", "orders", "inventory", "payment", "shipping", "readmodel", "bench", "manage.py")
THE_READER = ROOT / "shopsite" / "config.py"


def test_defaults_without_environment() -> None:
    cfg = from_environ({})
    assert cfg == Config()
    assert cfg.database_backend == "sqlite" and cfg.port is None and cfg.kafka_topic_partitions is None
    assert cfg.kafka_bootstrap() == config.LOCAL_KAFKA and cfg.redis() == config.LOCAL_REDIS
    assert cfg.var_dir_in(Path("/checkout")) == Path("/checkout/var")


def test_topics_get_one_partition_on_sqlite_four_elsewhere_unless_told() -> None:
    assert from_environ({}).topic_partitions() == 1
    assert from_environ({"SHOPSITE_DB": "postgres"}).topic_partitions() == 4
    assert from_environ({"SHOPSITE_DB": "sqlite", "KAFKA_TOPIC_PARTITIONS": "3"}).topic_partitions() == 3


def test_values_are_typed() -> None:
    cfg = from_environ({
        "PORT": "8123", "OUTBOX_SWEEP_SECONDS": "0.5", "DJANGO_HTTPS": "1", "DJANGO_HSTS_PRELOAD": "0",
        "DJANGO_ALLOWED_HOSTS": "shop.example, api.example", "SHOPSITE_VAR_DIR": "/srv/var", "SHOPSITE_DB": "Postgres",
        "LOG_LEVEL": "debug", "LOG_LEVELS": "shopsite.events.consumer=debug,celery=WARNING", "SHOPSITE_SERVICE": "payment",
    })
    assert cfg.port == 8123 and cfg.outbox_sweep_seconds == 0.5
    assert cfg.https is True and cfg.hsts_preload is False and cfg.hsts() == 31_536_000
    assert cfg.allowed_hosts == ("shop.example", "api.example")
    assert cfg.var_dir == Path("/srv/var") and cfg.database_backend == "postgres" and cfg.service == "payment"
    assert cfg.log_level == "DEBUG"
    assert cfg.log_levels == {"shopsite.events.consumer": "DEBUG", "celery": "WARNING"}


def test_empty_means_unset() -> None:
    assert from_environ({"PORT": "", "SHOPSITE_DB": " ", "DJANGO_HSTS_SECONDS": ""}) == Config()


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        Config().port = 1  # type: ignore[misc]


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        from_environ({"PORT": "eighty", "SHOPSITE_DB": "postgresql", "DJANGO_HTTPS": "yes please",
                      "KAFKA_TOPIC_PARTITIONS": "0", "SHOPSITE_SERVICE": "billing", "LOG_LEVELS": "x=LOUD",
                      "LOG_LEVEL": "chatty", "DJANGO_SECRET_KEY": "fine", "SESSION_COOKIE_AGE": "1.5"})
    message = str(caught.value)
    for expected in ("PORT='eighty': not a whole number",
                     "SHOPSITE_DB='postgresql': not one of sqlite | postgres | mongodb | mongomock",
                     "DJANGO_HTTPS='yes please': not a switch", "KAFKA_TOPIC_PARTITIONS='0': must be at least 1",
                     "SHOPSITE_SERVICE='billing': not one of orders | inventory", "LOG_LEVELS='x=LOUD'",
                     "LOG_LEVEL='chatty'", "SESSION_COOKIE_AGE='1.5'"):
        assert expected in message
    assert "DJANGO_SECRET_KEY" not in message


def test_make_run_refuses_a_bad_switch_by_name_before_starting_anything() -> None:
    env = {**config.environment(), "PORT": "eighty", "SHOPSITE_DB": "postgresql"}
    out = subprocess.run([sys.executable, "-m", "shopsite.supervisor"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "PORT='eighty': not a whole number" in out.stderr and "SHOPSITE_DB='postgresql'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_bad_secret_is_never_echoed() -> None:
    assert "s3cret" not in repr(from_environ({"DJANGO_SECRET_KEY": "s3cret"}))


# --- the one reader of the environment ---------------------------------------------


def _environment_reads(path: Path) -> list[str]:
    """Where a module reads the process environment: os.environ / os.getenv / environ from os.

    Writes are not reads: `os.environ.setdefault(...)` as a statement (manage.py, asgi.py and
    celery.py name the Django settings module for Django to read; bench/handlers_profile.py points
    the in-process settings at its temporary directory) and `os.environ[k] = v` / `del`.
    """
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    from_os = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module == "os" for alias in node.names if alias.name in {"environ", "getenv", "environb"}}
    found = []
    for node in ast.walk(tree):
        is_os_attr = (isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}
                      and isinstance(node.value, ast.Name) and node.value.id == "os")
        is_imported = isinstance(node, ast.Name) and node.id in from_os
        if not (is_os_attr or is_imported):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, (ast.Store, ast.Del)):
            continue
        if (isinstance(parent, ast.Attribute) and parent.attr == "setdefault"
                and isinstance(parents.get(parent), ast.Call) and isinstance(parents.get(parents[parent]), ast.Expr)):
            continue
        found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}")
    return found


def test_no_module_but_the_settings_object_reads_the_environment() -> None:
    files = [ROOT / name for name in SCANNED if name.endswith(".py")]
    files += [p for name in SCANNED if not name.endswith(".py") for p in (ROOT / name).rglob("*.py")]
    assert THE_READER in files
    readers = [hit for path in files if path != THE_READER for hit in _environment_reads(path)]
    assert readers == [], "read the environment through shopsite/config.py (add a field there):\n" + "\n".join(readers)


def test_the_scan_sees_reads_and_lets_writes_pass(tmp_path: Path) -> None:
    # The scan must be able to fail: every form of reading is caught, the two forms of writing are not.
    probe = tmp_path / "environ_probe.py"
    probe.write_text(
        "import os\nfrom os import environ as env, getenv\n"
        "a = os.environ.get('A')\nb = os.environ['B']\nc = os.getenv('C')\nd = dict(os.environ)\n"
        "e = env.get('E')\nf = getenv('F')\ng = os.environ.setdefault('G', '1')\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shopsite.settings')\nos.environ['H'] = '1'\n"
    )
    lines = sorted(int(hit.rsplit(":", 1)[1]) for hit in _environment_reads(probe))
    assert lines == [3, 4, 5, 6, 7, 8, 9]


# --- the README's table of switches ----------------------------------------------------

ROW = re.compile(r"^\|\s*`(?P<name>[A-Z0-9_]+)`\s*\|\s*(?P<default>[^|]*?)\s*\|")


def readme_switches() -> dict[str, str]:
    """name -> default cell of the table under "## Environment switches"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Environment switches", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if match := ROW.match(line):
            assert match["name"] not in rows, f"{match['name']} twice in the README's table"
            rows[match["name"]] = match["default"].strip("`")
    return rows


def test_the_readme_lists_exactly_the_settings_with_their_defaults() -> None:
    documented = readme_switches()
    fields = {f.metadata["env"]: config.default_text(f) for f in config.FIELDS}
    assert sorted(set(fields) - set(documented)) == [], "settings missing from the README's table"
    assert sorted(set(documented) - set(fields)) == [], "README rows with no field in shopsite/config.py"
    wrong = {name: (documented[name], default) for name, default in fields.items() if documented[name] != default}
    assert wrong == {}, "README default != the field's default: {name: (README, code)}"


def test_every_field_is_documented_in_the_code() -> None:
    for f in config.FIELDS:
        assert f.metadata["doc"].strip() and re.fullmatch(r"[A-Z][A-Z0-9_]+", f.metadata["env"])
    assert len(config.ENVIRONMENT_NAMES) == len(config.FIELDS)
