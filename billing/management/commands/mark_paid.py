import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from billing.management.commands._statement_command import add_statement_arguments, statement_and_user
from billing.services import mark_paid
from config.errors import DomainError


class Command(BaseCommand):
    help = "Record the payment of a provider's approved statement of a month."

    def add_arguments(self, parser):
        add_statement_arguments(parser)
        parser.add_argument("--reference", required=True, help="the payment's bank reference")
        parser.add_argument("--paid-on", required=True, help="YYYY-MM-DD")

    def handle(self, *args, period, provider, by, reference, paid_on, **options):
        statement, user = statement_and_user(period=period, provider=provider, by=by)
        try:
            day = dt.date.fromisoformat(paid_on)
        except ValueError:
            raise CommandError(f"not a date in the form YYYY-MM-DD: {paid_on!r}") from None
        try:
            statement = mark_paid(statement_id=statement.pk, by=user, reference=reference, paid_on=day)
        except DomainError as error:
            raise CommandError(f"{error.code}: {error.detail}") from error
        locked = " The month is paid in full and locked." if statement.period.state == "locked" else ""
        self.stdout.write(f"{period} {provider}: paid on {day} ({reference}).{locked}")
