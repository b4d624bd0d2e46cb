"""manage.py replay_dead_letters [filters] [--dry-run]: replay many dead letters, oldest first.

Each replay is the same as the dashboard's and the API's (readmodel.deadletters.replay):
the original re-published to its topic through the read model's outbox, the
replay counted in its headers, refused at the replay limit.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from django.core.management.base import BaseCommand, CommandError

from readmodel import deadletters
from readmodel.models import DeadLetter
from shopsite.ops.progress import progress_bar, table


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"not an ISO 8601 time: {text!r}") from exc
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _short(text: str, limit: int = 110) -> str:
    """One table row per letter: a long error is cut (the whole one is on /dlq and in the API)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Command(BaseCommand):
    help = "Replay the dead letters matching the filters, oldest first, respecting the replay limit."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--consumer", default="", help="a consumer that dead-lettered it (e.g. inventory)")
        parser.add_argument("--type", dest="event_type", default="", help="original event type")
        parser.add_argument("--since", type=_instant, default=None, help="dead-lettered at or after (ISO 8601)")
        parser.add_argument("--until", type=_instant, default=None, help="dead-lettered before (ISO 8601)")
        parser.add_argument("--error", default="", help="text in the error (case-insensitive)")
        parser.add_argument("--include-replayed", action="store_true",
                            help="also letters replayed before (still under the limit)")
        parser.add_argument("--max", type=int, default=None, help="replay at most this many")
        parser.add_argument("--dry-run", action="store_true", help="list what would be replayed; publish nothing")

    def handle(self, *args, consumer: str, event_type: str, since: datetime | None, until: datetime | None,
               error: str, include_replayed: bool, max: int | None, dry_run: bool, **options) -> None:
        selection = deadletters.Selection(consumer=consumer, event_type=event_type, since=since, until=until,
                                          error_contains=error,
                                          status=None if include_replayed else DeadLetter.PENDING)
        letters = deadletters.select(selection)[:max]
        self.stdout.write(f"{len(letters)} dead letters match{' (dry run: nothing is published)' if dry_run else ''}")
        outcomes: Counter[str] = Counter()
        rows = [("id", "type", "dead-lettered", "replays", "outcome")]
        with progress_bar(self.stderr, "replay", len(letters)) as advance:
            for letter in letters:
                try:
                    if dry_run:
                        deadletters.check_replayable(letter)
                        outcome = "would replay"
                    else:
                        deadletters.replay(letter.id)
                        outcome = "replayed"
                except deadletters.ReplayRefused as exc:
                    outcome = f"refused: {exc}"
                except LookupError:
                    outcome = "refused: gone"
                outcomes[outcome.split(":")[0]] += 1
                rows.append((letter.id, letter.original_type, f"{letter.created_at:%Y-%m-%d %H:%M:%S}",
                             str(letter.replay_count), _short(outcome)))
                advance(1)
        if letters:
            self.stdout.write(table(rows))
        done = "would replay" if dry_run else "replayed"
        self.stdout.write(f"{done}: {outcomes[done]}   refused: {outcomes['refused']}   "
                          f"(limit {deadletters.MAX_REPLAYS} replays per message)")
