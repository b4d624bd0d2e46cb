from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from shopsite.ops.auth import issue_token


class Command(BaseCommand):
    help = "Create a staff user if needed and print a bearer token for /api/ops/*."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        user, created = User.objects.db_manager("default").get_or_create(
            username=options["username"], defaults={"is_staff": True}
        )
        if created:
            user.set_unusable_password()
            user.save(using="default")
            self.stderr.write(f"created staff user {user.username}")
        elif not user.is_staff:
            self.stderr.write(f"warning: {user.username} is not staff; this token will get 403")
        self.stdout.write(issue_token(user.username))
