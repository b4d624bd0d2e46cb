from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "shopsite.ops"
    label = "ops"
    verbose_name = "Operations (API tokens, health, metrics)"

    def ready(self) -> None:
        from shopsite.ops import tokens  # noqa: F401 - connects the user-saved signal
