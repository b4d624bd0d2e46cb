from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "shopsite.events"
    label = "events"
    verbose_name = "Event infrastructure (outbox, processed events)"
