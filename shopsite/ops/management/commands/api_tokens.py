from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from shopsite.ops import tokens
from shopsite.ops.models import ALL_SCOPES, ApiToken


class Command(BaseCommand):
    help = "API tokens: create (printed once), list, revoke."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="issue a token for an existing user; the token is the last line")
        create.add_argument("username")
        create.add_argument("--name", default="")
        create.add_argument("--scope", action="append", dest="scopes",
                            help="a permission the token may use, e.g. ops.place_orders (repeat); "
                                 "default: every permission of the user")
        create.add_argument("--days", type=int, default=None, help="expiry in days (0: never)")
        create.add_argument("--outlive-password", action="store_true",
                            help="keep the token valid when the user's password changes (service accounts)")
        listing = sub.add_parser("list", help="tokens (never their secrets)")
        listing.add_argument("username", nargs="?")
        revoke = sub.add_parser("revoke", help="revoke tokens by id")
        revoke.add_argument("ids", nargs="+")

    def handle(self, *args, **options) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _create(self, options) -> None:
        user = get_user_model().objects.db_manager("default").filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']}")
        days = options["days"]
        expires = tokens.DEFAULT_EXPIRY if days is None else (timedelta(days=days) if days > 0 else None)
        issued = tokens.issue(user, name=options["name"], scopes=options["scopes"] or [ALL_SCOPES],
                              expires_in=expires, outlives_password=options["outlive_password"])
        self.stderr.write(f"token {issued.token.id} for {user.username} (shown once)")
        self.stdout.write(issued.plaintext)

    def _list(self, options) -> None:
        rows = ApiToken.objects.using("default").select_related("user")
        if options["username"]:
            rows = rows.filter(user__username=options["username"])
        for row in rows:
            state = "revoked" if row.revoked_at else "active"
            self.stdout.write(f"{row.id}  {row.user.username:<20} {state:<8} name={row.name or '-'} "
                              f"scopes={','.join(row.scopes)} expires={row.expires_at or 'never'} "
                              f"last_used={row.last_used_at or 'never'}")

    def _revoke(self, options) -> None:
        count = tokens.revoke(options["ids"])
        self.stdout.write(f"revoked {count} token(s)")
