"""manage.py rebuild_projection [--dry-run]: rebuild orders_projection from the topics.

See readmodel/rebuild.py for why this is safe while the system runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from orders.lifecycle import STATUSES
from readmodel import rebuild
from readmodel.shadow import shadow_database
from shopsite.ops.progress import progress_bar, table

SHOW_DIFFERENCES = 20


@contextlib.contextmanager
def quiet_replay_logs(verbosity: int) -> Iterator[None]:
    """A replay re-applies history: a log line per event, and every old dead letter warned about again,
    would drown the summary. Errors still come through; -v 2 shows everything."""
    if verbosity > 1:
        yield
        return
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class Command(BaseCommand):
    help = ("Rebuild the read model's orders_projection by replaying every topic from the beginning into a "
            "shadow database, compare it with the live projections, and put the rebuilt ones in place.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="rebuild and compare only; the live projections are not touched")
        parser.add_argument("--batch-size", type=int, default=500, help="messages per transaction")

    def handle(self, *args, dry_run: bool, batch_size: int, **options) -> None:
        live = rebuild.READMODEL.alias
        started = time.monotonic()
        topics = rebuild.readmodel_spec(live).topics
        try:
            ranges = rebuild.snapshot(topics)
        except Exception as exc:  # noqa: BLE001 - the broker's own error is the useful message
            raise CommandError(f"cannot read the topics' offsets: {exc}") from exc
        self.stdout.write(f"replaying {len(ranges)} partitions of {len(topics)} topics from the beginning "
                          f"into a shadow database{' (dry run)' if dry_run else ''}")
        # The rebuild's commits must not push live updates to browsers: nothing live changed.
        with override_settings(CHANNEL_LAYERS={}), shadow_database(live, f"{os.getpid()}") as shadow:
            with progress_bar(self.stderr, "replay", sum(r.size for r in ranges)) as advance, \
                    quiet_replay_logs(options["verbosity"]):
                replayed = rebuild.replay_into(shadow, ranges, lambda n, total: advance(n, total), batch_size)
            with progress_bar(self.stderr, "compare", None) as advance:
                comparison = rebuild.compare(live, shadow, advance)
            swapped = None
            if not dry_run:
                changed = [*comparison.differing, *comparison.only_rebuilt]
                with progress_bar(self.stderr, "swap", len(changed)) as advance:
                    swapped = rebuild.swap(live, shadow, changed, advance)
        self._summary(replayed, comparison, swapped, time.monotonic() - started)

    def _summary(self, replayed: rebuild.ReplayResult, c: rebuild.Comparison, swapped: rebuild.SwapResult | None,
                 seconds: float) -> None:
        out = self.stdout.write
        out(f"events replayed: {replayed.messages}   orders rebuilt: {c.rebuilt_orders}   "
            f"live orders: {c.live_orders}   ({seconds:.1f} s)")
        statuses = [s for s in STATUSES] + sorted((set(c.live_by_status) | set(c.rebuilt_by_status)) - set(STATUSES))
        rows = [("status", "live", "rebuilt", "")]
        for status in statuses:
            a, b = c.live_by_status.get(status, 0), c.rebuilt_by_status.get(status, 0)
            rows.append((status, str(a), str(b), "" if a == b else "differs"))
        out(table(rows))
        out(f"orders that differ: {len(c.differing)}   only live: {len(c.only_live)}   "
            f"only rebuilt: {len(c.only_rebuilt)}")
        for label, ids in (("differs", c.differing), ("only live", c.only_live), ("only rebuilt", c.only_rebuilt)):
            for order_id in ids[:SHOW_DIFFERENCES]:
                out(f"  {label}: {order_id}")
        if c.only_live:
            out("  (only live: their events are no longer on the topics, e.g. past the broker's retention, "
                "or arrived after the snapshot; never deleted)")
        if swapped is None:
            out("dry run: the live projections were not changed" if not c.identical
                else "dry run: the rebuilt projections are identical to the live ones")
        else:
            out(f"swapped: {swapped.replaced} replaced, {swapped.inserted} inserted, {swapped.unchanged} unchanged, "
                f"{len(swapped.live_ahead)} left to the live consumer (it had newer events)")
        if c.identical:
            out("result: identical")
        elif swapped is not None and not swapped.live_ahead:
            out("result: differences found; the live projections now match the rebuild")
        else:
            out("result: differences found")
