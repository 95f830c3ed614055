from django.core.management.base import BaseCommand, CommandError

from billing.services import settle
from config.commands import user_named
from config.errors import DomainError
from config.months import parse_month

COMMAND_JOB = "manage.py settle"


class Command(BaseCommand):
    help = (
        "Close a month that has ended and draft one statement per provider; again, with the same "
        "figures, until a statement of the month is approved."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument(
            "--by", default=None, help=f"the finance user who settles (else recorded as '{COMMAND_JOB}')"
        )

    def handle(self, *args, period, by, **options):
        try:
            month = parse_month(period)
        except ValueError as error:
            raise CommandError(str(error)) from None
        user = user_named(by)
        try:
            result = settle(month=month, by=user, job="" if user else COMMAND_JOB)
        except DomainError as error:
            raise CommandError(error.detail) from error
        self.stdout.write(
            f"{period}: drafted {len(result.statements)} provider statements, "
            f"{result.redemption_count} redemptions, total {result.total_amount.amount} CNY "
            f"(government {result.government_total.amount}, seniors {result.senior_total.amount})."
        )
        failed = [check.code for check in result.period.checks.all() if check.status == "failed"]
        if failed:
            self.stdout.write("Reconciliation checks failed: " + ", ".join(failed))
