from django.core.management.base import BaseCommand

from shopsite.ops import tokens
from shopsite.ops.roles import ensure_user


class Command(BaseCommand):
    help = ("Create an operator if needed and print (last line) a new API token carrying every "
            "permission of that user. Shown once: only its hash is stored.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="issue_ops_token")

    def handle(self, *args, **options) -> None:
        user, created = ensure_user(options["username"], operator=True)
        if created:
            self.stderr.write(f"created operator {user.username}")
        issued = tokens.issue(user, name=options["name"])
        expires = issued.token.expires_at.isoformat() if issued.token.expires_at else "never"
        self.stderr.write(f"token {issued.token.id} for {user.username}, expires {expires}")
        self.stdout.write(issued.plaintext)
