from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or update) a dashboard operator: a staff user with a password, not a superuser."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--read-only", action="store_true", help="a user who may look but not act")

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        user, created = User.objects.db_manager("default").get_or_create(username=options["username"])
        user.is_staff = not options["read_only"]
        user.set_password(options["password"])
        user.save(using="default")
        role = "read-only user" if options["read_only"] else "operator"
        self.stdout.write(f"{'created' if created else 'updated'} {role} {user.username}")
