import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from config.commands import user_named
from config.errors import DomainError
from eligibility.selectors import draft_of
from eligibility.services import activate_policy


class Command(BaseCommand):
    help = (
        "Activate the draft of a policy from a date (today or later); the version in force then "
        "is retired the day before. Past determinations, vouchers and redemptions do not change."
    )

    def add_arguments(self, parser):
        parser.add_argument("--code", required=True, help="the code of the policy whose draft to activate")
        parser.add_argument("--from", dest="effective_from", required=True, help="YYYY-MM-DD")
        parser.add_argument("--by", help="the username recorded as activating it (default: none, a script)")

    def handle(self, *args, code, effective_from, by=None, **options):
        try:
            day = dt.date.fromisoformat(effective_from)
        except ValueError:
            raise CommandError(f"--from must be a date YYYY-MM-DD, not {effective_from!r}") from None
        user = user_named(by)
        policy = draft_of(code)
        if policy is None:
            raise CommandError(f"no draft of policy {code!r}")
        try:
            activate_policy(policy=policy, effective_from=day, by=user)
        except DomainError as error:
            raise CommandError(error.detail) from error
        self.stdout.write(f"{policy} is active from {day}.")
