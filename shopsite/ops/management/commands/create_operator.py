from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from shopsite.ops.roles import ensure_user


class Command(BaseCommand):
    help = "Create (or update) a dashboard user with a password: an operator, or with --read-only a viewer."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--read-only", action="store_true", help="a viewer: may look but not act")

    def handle(self, *args, **options) -> None:
        user, created = ensure_user(options["username"], operator=not options["read_only"])
        try:
            validate_password(options["password"], user)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        user.set_password(options["password"])
        user.save(using="default")
        role = "viewer" if options["read_only"] else "operator"
        self.stdout.write(f"{'created' if created else 'updated'} {role} {user.username}")
