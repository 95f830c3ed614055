from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from config.months import parse_month
from vouchers.services import issue_vouchers


class Command(BaseCommand):
    help = "Issue a month's vouchers to every qualifying senior (idempotent) and expire earlier ones."

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM")

    def handle(self, *args, period, **options):
        try:
            month = parse_month(period)
            result = issue_vouchers(period=month)
        except ValueError as error:
            raise CommandError(str(error)) from None
        except DomainError as error:
            raise CommandError(error.detail) from error
        self.stdout.write(
            f"{period}: issued {result.issued} vouchers, expired {result.expired} earlier ones."
        )
