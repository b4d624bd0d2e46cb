"""How many live streams may be open: per user and in all, across every web process.

The web tier is several processes behind one socket, so a count kept in one
process would let each of them admit the full cap. The open streams are
leases in Redis (sorted sets scored by expiry): a stream renews its lease
with each heartbeat, and a process that dies without closing its streams
stops renewing them, so they lapse instead of holding the cap for ever.
The check and the add are one Lua script, so two processes cannot both take
the last place. If Redis does not answer, each process counts its own
streams (the caps then hold per process): better a looser cap than no
dashboard.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

log = logging.getLogger(__name__)

PREFIX = "shopsite:streams"

# KEYS: every stream, this user's streams. ARGV: now, lease expiry, stream id, cap in all, cap per user.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) or redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('EXPIRE', KEYS[2], 3600)
return 1
"""


def lease_seconds() -> float:
    # Three missed heartbeats before a stream of a dead process stops counting.
    return 3 * settings.SSE_HEARTBEAT_SECONDS + 5


class Admission:
    def __init__(self) -> None:
        self._client: Any = None
        self._script: Any = None
        self.local: Counter[str] = Counter()  # the fallback when Redis is away
        self._warned = False

    def _redis(self) -> Any:
        if self._client is None:
            self._client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5,
                                                   socket_connect_timeout=0.5)
            self._script = self._client.register_script(_ADMIT)
        return self._client

    @staticmethod
    def _keys(user_key: str) -> list[str]:
        return [f"{PREFIX}:all", f"{PREFIX}:user:{user_key}"]

    async def admit(self, user_key: str) -> str | None:
        """A lease id when the stream may open; None when a cap is reached."""
        lease = uuid.uuid4().hex
        now = time.time()
        try:
            self._redis()
            admitted = await self._script(keys=self._keys(user_key), args=[
                now, now + lease_seconds(), lease, settings.SSE_MAX_STREAMS, settings.SSE_MAX_STREAMS_PER_USER])
            return lease if admitted else None
        except Exception as exc:  # noqa: BLE001 - any Redis trouble: count in this process
            self._warn(exc)
        if sum(self.local.values()) >= settings.SSE_MAX_STREAMS or self.local[user_key] >= settings.SSE_MAX_STREAMS_PER_USER:
            return None
        self.local[user_key] += 1
        return f"local:{lease}"

    async def renew(self, user_key: str, lease: str) -> None:
        if lease.startswith("local:"):
            return
        try:
            expiry = time.time() + lease_seconds()
            async with self._redis().pipeline(transaction=False) as pipe:
                for key in self._keys(user_key):
                    pipe.zadd(key, {lease: expiry}, xx=True)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - the lease lapses; the stream itself goes on
            self._warn(exc)

    async def release(self, user_key: str, lease: str) -> None:
        if lease.startswith("local:"):
            self.local[user_key] -= 1
            if self.local[user_key] <= 0:
                del self.local[user_key]
            return
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                for key in self._keys(user_key):
                    pipe.zrem(key, lease)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - the lease lapses on its own
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("stream admission: Redis unavailable (%s); counting streams in this process", exc)
            self._warned = True


admission = Admission()
