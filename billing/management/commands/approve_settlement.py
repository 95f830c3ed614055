from django.core.management.base import BaseCommand, CommandError

from billing.management.commands._statement_command import add_statement_arguments, statement_and_user
from billing.services import approve_statement
from config.errors import DomainError


class Command(BaseCommand):
    help = "Approve a provider's reviewed statement of a month (not by whoever prepared it)."

    def add_arguments(self, parser):
        add_statement_arguments(parser)

    def handle(self, *args, period, provider, by, **options):
        statement, user = statement_and_user(period=period, provider=provider, by=by)
        try:
            statement = approve_statement(statement_id=statement.pk, by=user)
        except DomainError as error:
            raise CommandError(f"{error.code}: {error.detail}") from error
        self.stdout.write(
            f"{period} {provider}: approved by {user.get_username()}; payment due {statement.due_date}."
        )
