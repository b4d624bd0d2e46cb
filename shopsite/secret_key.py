"""The Django secret key: from the environment, or generated once per checkout by `make run`.

Nothing here has a default that ships with the source: outside DEBUG, a
process without DJANGO_SECRET_KEY (and without the generated file) refuses
to start. The embedded `make run` calls `ensure()` before starting anything,
which writes a random key to var/secret_key (mode 0600) the first time and
says so; every process of that checkout (daphne, workers, manage.py) then
reads the same file. `make run` asks for that by setting
SHOPSITE_GENERATE_SECRET_KEY=1; the first process to load the settings
creates the file (exclusively: concurrent starters agree on one key).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Only ever used with DJANGO_DEBUG=1 and no key configured.
_DEBUG_ONLY_KEY = "debug-only-insecure-key-never-used-without-DJANGO_DEBUG=1"


class MissingSecretKey(ImproperlyConfigured):
    pass


def configured(from_env: str, key_file: Path, *, debug: bool) -> str:
    if from_env:
        return from_env
    if key_file.is_file():
        key = key_file.read_text().strip()
        if key:
            return key
    if debug:
        return _DEBUG_ONLY_KEY
    raise MissingSecretKey(
        "DJANGO_SECRET_KEY is not set. Set it to a long random value (for example "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or run `make run`, "
        f"which generates one into {key_file}."
    )


def ensure(key_file: Path) -> bool:
    """Create `key_file` with a random key unless it exists; True when it was created just now."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(50) + "\n")
    sys.stderr.write(f"Generated a secret key for this checkout into {key_file} "
                     "(DJANGO_SECRET_KEY takes precedence; keep the file private).\n")
    return True
