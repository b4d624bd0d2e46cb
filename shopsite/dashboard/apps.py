from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "shopsite.dashboard"
    label = "dashboard"
    verbose_name = "Operations dashboard"
