from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "shopsite.ops"
    label = "ops"
    verbose_name = "Operations (tokens, health, metrics)"
