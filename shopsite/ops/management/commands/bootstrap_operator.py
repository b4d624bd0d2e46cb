from django.conf import settings
from django.core.management.base import BaseCommand

from shopsite.ops.roles import ensure_user
from shopsite.ops.signin import make_path


class Command(BaseCommand):
    help = ("Ensure a local operator exists and print a one-time sign-in link for it "
            "(valid SIGN_IN_LINK_MINUTES, once). What `make run` shows a newcomer.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="operator")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, **options) -> None:
        user, _ = ensure_user(options["username"], operator=True)
        url = options["base_url"].rstrip("/") + make_path(user)
        self.stdout.write(f"Sign in as {user.username} (link valid {settings.SIGN_IN_LINK_MINUTES} minutes, once): {url}")
