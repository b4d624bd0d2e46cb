import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from shopsite.events.kafka import ensure_topics

log = logging.getLogger("shopsite.topics")


class Command(BaseCommand):
    help = "Create every event topic (one per event type) that does not exist yet."

    def handle(self, *args, **options) -> None:
        created = ensure_topics()
        log.info("topics ensured", extra={"bootstrap": settings.KAFKA_BOOTSTRAP_SERVERS, "topicsCreated": len(created)})
