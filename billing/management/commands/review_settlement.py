from django.core.management.base import BaseCommand, CommandError

from billing.management.commands._statement_command import add_statement_arguments, statement_and_user
from billing.services import review_statement
from config.errors import DomainError


class Command(BaseCommand):
    help = "Mark a provider's draft statement of a month as reviewed, with a note."

    def add_arguments(self, parser):
        add_statement_arguments(parser)
        parser.add_argument("--note", default="", help="what the review found")

    def handle(self, *args, period, provider, by, note, **options):
        statement, user = statement_and_user(period=period, provider=provider, by=by)
        try:
            review_statement(statement_id=statement.pk, by=user, note=note)
        except DomainError as error:
            raise CommandError(error.detail) from error
        self.stdout.write(f"{period} {provider}: reviewed by {user.get_username()}.")
