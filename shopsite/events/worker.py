"""A Celery worker bootstep that runs the chosen services' Kafka consumers and outbox relays.

Each service consumer gets one thread: a partition's messages are handled
in order by exactly one loop, never fanned out to concurrent tasks. Each
served outbox gets one relay loop thread (relay_loop.py), woken after every
commit, plus one listener thread for wake-ups sent from other processes, and
one thread that notices a broker which lost its log (lost_log.py). The
step stops the loops on worker shutdown (SIGTERM/SIGINT): the current batch
finishes and commits, the relays publish what it emitted, and the producer is flushed.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from typing import Any

from celery import bootsteps
from celery.signals import worker_shutdown

log = logging.getLogger(__name__)


class ServiceConsumersStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, services: str = "", **kwargs: Any):
        super().__init__(parent, **kwargs)
        self.spec_option = services or ""
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.relays: list[Any] = []
        self.relay_threads: list[threading.Thread] = []
        self.relay_stop = threading.Event()
        self._consume_service_queues(parent)

    def _consume_service_queues(self, parent: Any) -> None:
        """Take the outbox tasks of this worker's services (all of them for a tasks-only worker).

        Runs at init, after -Q was applied and before the task consumer starts,
        so it adds to whatever queues the worker was told to consume.
        """
        from shopsite.services import SERVICES, parse_service_names, task_queue

        services = parse_service_names(self.spec_option) if self.spec_option else list(SERVICES)
        for service in services:
            parent.app.amqp.queues.select_add(task_queue(service))

    def start(self, parent: Any) -> None:
        if not self.spec_option:
            return
        from shopsite.events.consumer import ServiceConsumer
        from shopsite.events.kafka import ensure_topics, warm_producer
        from shopsite.events.registry import consumer_specs
        from shopsite.services import parse_service_names

        services = parse_service_names(self.spec_option)
        collect_garbage_less_often()
        ensure_topics()
        warm_producer()
        for spec in (lane for service_spec in consumer_specs(services) for lane in service_spec.lanes()):
            consumer = ServiceConsumer(spec, self.stop_event)
            thread = threading.Thread(target=self._guarded(consumer), name=f"consumer-{spec.member_name}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
        self._start_relays([s.alias for s in services])
        log.info("service consumers running", extra={"services": [s.name for s in services]})

    def _start_relays(self, aliases: list[str]) -> None:
        from shopsite.events.outbox_signal import Listener
        from shopsite.events.relay_loop import RelayLoop

        for alias in dict.fromkeys(aliases):
            loop = RelayLoop(alias)
            thread = threading.Thread(target=self._guarded_relay(loop), name=f"relay-{alias}", daemon=True)
            thread.start()
            self.relays.append(loop)
            self.relay_threads.append(thread)
        listener = Listener(aliases, self.relay_stop)
        thread = threading.Thread(target=listener.run, name="outbox-wakeups", daemon=True)
        thread.start()
        self.relay_threads.append(thread)
        self._start_lost_log_watch(aliases)

    def _start_lost_log_watch(self, aliases: list[str]) -> None:
        from shopsite.events.lost_log import LostLogWatch

        watch = LostLogWatch(aliases, self.relay_stop)
        thread = threading.Thread(target=watch.run, name="lost-log-watch", daemon=True)
        thread.start()
        self.relay_threads.append(thread)

    def _guarded_relay(self, loop: Any):
        def run() -> None:
            try:
                loop.run()
            except Exception:
                # Same as a consumer: a silent dead relay would leave its outbox to the sweep alone.
                log.critical("relay loop crashed; stopping worker", exc_info=True, extra={"db": loop.alias})
                import signal

                os.kill(os.getpid(), signal.SIGTERM)

        return run

    def _guarded(self, consumer: Any):
        def run() -> None:
            try:
                consumer.run()
            except Exception:
                # A consumer that dies silently would stall its service; make the whole worker exit
                # so the supervisor sees it and restarts it.
                log.critical("consumer crashed; stopping worker", exc_info=True,
                             extra={"consumer": consumer.spec.name})
                import signal

                os.kill(os.getpid(), signal.SIGTERM)

        return run

    def stop(self, parent: Any) -> None:
        if not self.threads:
            return
        from shopsite.events.kafka import close_shared_producer

        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        # After the consumers: each relay publishes what the last batches emitted, then lets go.
        for loop in self.relays:
            loop.stop()
        self.relay_stop.set()
        for thread in self.relay_threads:
            thread.join(timeout=20)
        alive = [t.name for t in [*self.threads, *self.relay_threads] if t.is_alive()]
        undelivered = close_shared_producer()
        log.info("service consumers stopped", extra={"undelivered": undelivered, "stillRunning": alive})

    shutdown = stop


# Allocations between collections of the youngest generation (Python's default: 700).
GC_THRESHOLD = 50_000


def collect_garbage_less_often() -> None:
    """Spare the consumers most of the cyclic garbage collector's work.

    A consumer allocates a great many short-lived objects (decoded events,
    rows, JSON documents) that reference counting frees at once; with the
    default threshold the collector still ran over a thousand times a
    second's work and, walking the whole heap of Django and its apps on each
    full pass, took about a sixth of a consumer's CPU (bench/handlers_profile.py
    with gc.callbacks: 0.74 s of collections for 2,000 orders, 0.17 s at this
    threshold). What start-up built is frozen out of the collector's view:
    it lives as long as the process.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


@worker_shutdown.connect
def _after_pool_stopped(**_: Any) -> None:
    """Last words of a worker: after the pool's tasks finished (the step above stops before the pool).

    A dispatch task still running when the consumers stopped may have opened a
    new producer; flush it too. Then drop this process's live gauges so a
    dead worker does not keep reporting e.g. "paused".
    """
    from shopsite.events import metrics
    from shopsite.events.kafka import close_shared_producer

    undelivered = close_shared_producer()
    if undelivered:
        log.warning("producer closed with undelivered messages (they stay pending in the outbox)",
                    extra={"undelivered": undelivered})
    metrics.mark_dead(os.getpid())
    log.info("worker stopped")
