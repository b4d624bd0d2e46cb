"""manage.py purge_outbox [--dry-run]: retention by hand (beat runs the same purge every hour)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from shopsite.events import retention
from shopsite.ops.progress import progress_bar, table
from shopsite.services import SERVICES, parse_service_names


class Command(BaseCommand):
    help = ("Delete dispatched outbox rows and processed_events rows older than their retention "
            "(OUTBOX_RETENTION_HOURS, PROCESSED_EVENTS_RETENTION_HOURS), in batches, per service database.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        parser.add_argument("--services", default="all", help="comma-separated services (default: all)")
        parser.add_argument("--outbox-hours", type=float, default=None,
                            help="age after dispatch (default: OUTBOX_RETENTION_HOURS)")
        parser.add_argument("--processed-hours", type=float, default=None,
                            help="age of processed_events rows (default: PROCESSED_EVENTS_RETENTION_HOURS)")
        parser.add_argument("--batch-size", type=int, default=None, help="rows per delete (RETENTION_PURGE_BATCH)")

    def handle(self, *args, dry_run: bool, services: str, outbox_hours: float | None,
               processed_hours: float | None, batch_size: int | None, **options) -> None:
        try:
            chosen = parse_service_names(services)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        cutoffs = retention.Cutoffs.from_settings(outbox_hours=outbox_hours, processed_hours=processed_hours)
        self.stdout.write(f"outbox rows dispatched before {cutoffs.outbox:%Y-%m-%d %H:%M:%S} UTC, processed_events "
                          f"before {cutoffs.processed_events:%Y-%m-%d %H:%M:%S} UTC"
                          f"{' (dry run: nothing is deleted)' if dry_run else ''}")
        rows = [("service", retention.OUTBOX, retention.PROCESSED_EVENTS)]
        totals = {retention.OUTBOX: 0, retention.PROCESSED_EVENTS: 0}
        for service in chosen:
            expired = {table: query.count() for table, query in retention.expired(service.alias, cutoffs).items()}
            if dry_run:
                done = expired
            else:
                with progress_bar(self.stderr, f"purge {service.name}", sum(expired.values())) as advance:
                    done = retention.purge(service.alias, cutoffs, batch_size, lambda _table, n: advance(n))
            rows.append((service.name, str(done[retention.OUTBOX]), str(done[retention.PROCESSED_EVENTS])))
            for name, count in done.items():
                totals[name] += count
        rows.append(("total", str(totals[retention.OUTBOX]), str(totals[retention.PROCESSED_EVENTS])))
        self.stdout.write(table(rows))
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {totals[retention.OUTBOX]} outbox rows and {totals[retention.PROCESSED_EVENTS]} "
                          f"processed_events rows in {len(chosen)} of {len(SERVICES)} service databases")
