"""What the statement commands share: the statement of a month and provider, and the user."""

from django.core.management.base import CommandError

from billing.models import Statement
from config.commands import user_named
from config.months import parse_month


def add_statement_arguments(parser) -> None:
    parser.add_argument("--period", required=True, help="YYYY-MM")
    parser.add_argument("--provider", required=True, help="the provider's code")
    parser.add_argument("--by", required=True, help="the finance user's username")


def statement_and_user(*, period: str, provider: str, by: str) -> tuple[Statement, object]:
    try:
        month = parse_month(period)
    except ValueError as error:
        raise CommandError(str(error)) from None
    user = user_named(by)
    statement = Statement.objects.filter(period__month=month, provider__code=provider).first()
    if statement is None:
        raise CommandError(f"no statement of {period} for the provider {provider!r}")
    return statement, user
