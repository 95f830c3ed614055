import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.errors import DomainError
from config.months import local_date
from eligibility.selectors import evaluation_date
from eligibility.services import evaluate_eligibility

JOB = "manage.py evaluate_eligibility"


class Command(BaseCommand):
    help = "Evaluate every active senior against the policy in force and record changed determinations."

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of",
            help="YYYY-MM-DD (default: today, Asia/Shanghai, or the later day the month-end run already decided)",
        )

    def handle(self, *args, as_of=None, **options):
        try:
            day = dt.date.fromisoformat(as_of) if as_of else evaluation_date(today=local_date(timezone.now()))
        except ValueError:
            raise CommandError(f"--as-of must be a date YYYY-MM-DD, not {as_of!r}") from None
        try:
            result = evaluate_eligibility(as_of=day, job=JOB)
        except DomainError as error:
            raise CommandError(error.detail) from error
        self.stdout.write(
            f"{result.policy}: evaluated {result.evaluated} seniors as of {day}, "
            f"{result.changed} new determinations, {result.retired} no longer qualify."
        )
