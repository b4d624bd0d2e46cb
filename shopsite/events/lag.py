"""Consumer lag per group/partition, measured by the consumer loop itself.

Cheap by construction: every few seconds (not per message) the loop asks
librdkafka for its assigned partitions' positions and the high watermarks it
has cached from its own fetch responses, so no request goes to the broker.
The loop also stamps a "last poll" time, so a consumer that stopped polling
(stuck handler, dead thread) shows up as a stale timestamp rather than as a
lag figure that merely stopped changing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from shopsite.events import metrics

log = logging.getLogger(__name__)

REPORT_INTERVAL_SECONDS = 5.0


def partition_lag(high: int, position: int) -> int | None:
    """Messages not yet consumed; None while either offset is still unknown (librdkafka reports < 0)."""
    if high < 0:
        return None
    if position < 0:
        # Nothing consumed since the assignment: only an empty partition has a known lag.
        return 0 if high == 0 else None
    return max(high - position, 0)


class LagReporter:
    def __init__(self, group: str, service: str, interval: float = REPORT_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.group = group
        self.service = service
        self.interval = interval
        self.clock = clock
        self._due = 0.0

    def maybe_report(self, consumer: Any) -> bool:
        """Report if the interval has passed; returns whether it did."""
        now = self.clock()
        if now < self._due:
            return False
        self._due = now + self.interval
        metrics.CONSUMER_LAST_POLL.labels(self.service).set(time.time())
        try:
            assignment = consumer.assignment()
            if assignment:
                for tp in consumer.position(assignment):
                    _low, high = consumer.get_watermark_offsets(tp, cached=True)
                    lag = partition_lag(high, tp.offset)
                    if lag is not None:
                        metrics.CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(lag)
        except KafkaException:
            # Metrics must never stop the loop; the next interval tries again.
            log.debug("could not read consumer positions", exc_info=True)
        return True
