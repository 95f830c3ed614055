from django.core.management.base import BaseCommand, CommandError

from config.commands import user_named
from config.errors import DomainError
from config.months import parse_month
from vouchers.services import issue_vouchers


class Command(BaseCommand):
    help = (
        "Issue a month's vouchers to every qualifying senior (idempotent: a re-run issues only to "
        "seniors determined since the last run; --full looks at everyone) and expire earlier ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument(
            "--full",
            action="store_true",
            help="look at every senior, not only those determined since the last run",
        )
        parser.add_argument("--by", help="the username recorded as running it (default: none, a script)")

    def handle(self, *args, period, full=False, by=None, **options):
        user = user_named(by)
        try:
            month = parse_month(period)
            result = issue_vouchers(period=month, by=user, full=full, job="" if user else "issue_vouchers")
        except ValueError as error:
            raise CommandError(str(error)) from None
        except DomainError as error:
            raise CommandError(error.detail) from error
        scope = "seniors determined since the last run" if result.incremental else "every senior"
        self.stdout.write(
            f"{period}: issued {result.issued} vouchers ({scope}), expired {result.expired} earlier ones."
        )
