"""Production settings, checked the way Django's deployment checklist does, in fresh processes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from shopsite import secret_key

pytestmark = pytest.mark.backends("sqlite")

ROOT = Path(__file__).resolve().parents[2]


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SHOPSITE_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**base, "SHOPSITE_VAR_DIR": str(tmp_path), **env})


def test_check_deploy_is_clean_under_production_settings(tmp_path: Path):
    done = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING",
                   DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_HTTPS="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_without_a_secret_key_nothing_starts_unless_debug(tmp_path: Path):
    refused = _manage(tmp_path, "check")
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY is not set" in refused.stderr
    assert _manage(tmp_path, "check", DJANGO_DEBUG="1").returncode == 0


def test_make_run_generates_a_private_key_once_and_every_process_reads_it(tmp_path: Path):
    key_file = tmp_path / "secret_key"
    assert secret_key.ensure(key_file) is True
    assert secret_key.ensure(key_file) is False
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key = key_file.read_text().strip()
    assert len(key) >= 50
    assert secret_key.configured("", key_file, debug=False) == key
    assert _manage(tmp_path, "check").returncode == 0  # a process of this checkout finds it


def test_make_run_asks_the_first_process_to_generate_the_key(tmp_path: Path):
    done = _manage(tmp_path, "check", SHOPSITE_GENERATE_SECRET_KEY="1")
    assert done.returncode == 0 and "Generated a secret key" in done.stderr, done.stderr
    assert (tmp_path / "secret_key").is_file()
    assert "Generated" not in _manage(tmp_path, "check", SHOPSITE_GENERATE_SECRET_KEY="1").stderr
