from django.conf import settings
from django.core.management.base import BaseCommand

from shopsite.events.kafka import ensure_topics


class Command(BaseCommand):
    help = "Create every event topic (one per event type) that does not exist yet."

    def handle(self, *args, **options) -> None:
        created = ensure_topics()
        self.stdout.write(f"topics on {settings.KAFKA_BOOTSTRAP_SERVERS}: created {len(created)}")
