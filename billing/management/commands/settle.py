from django.core.management.base import BaseCommand, CommandError

from billing.services import settle
from config.errors import DomainError
from config.months import parse_month


class Command(BaseCommand):
    help = "Settle a month that has ended: close its ledger and write one statement per provider."

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM")

    def handle(self, *args, period, **options):
        try:
            month = parse_month(period)
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            result = settle(month=month)
        except DomainError as error:
            raise CommandError(error.detail) from error
        self.stdout.write(
            f"{period}: settled {len(result.statements)} provider statements, "
            f"{result.redemption_count} redemptions, total {result.total_amount.amount} CNY "
            f"(government {result.government_total.amount}, seniors {result.senior_total.amount})."
        )
