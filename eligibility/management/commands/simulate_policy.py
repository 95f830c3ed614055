import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.errors import DomainError
from config.months import local_date
from eligibility.selectors import draft_of, simulate_policy


def _tier(tier) -> str:
    return tier.code if tier else "-"


class Command(BaseCommand):
    help = (
        "What a draft policy would change against the policy in force, on today's registry: tier "
        "and care-visit class moves (from -> to, counts) and the monthly voucher budget per district. "
        "Writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--draft", required=True, help="the code of the policy whose draft to simulate")
        parser.add_argument("--as-of", help="YYYY-MM-DD (default: today, Asia/Shanghai)")

    def handle(self, *args, draft, as_of=None, **options):
        try:
            day = dt.date.fromisoformat(as_of) if as_of else local_date(timezone.now())
        except ValueError:
            raise CommandError(f"--as-of must be a date YYYY-MM-DD, not {as_of!r}") from None
        policy = draft_of(draft)
        if policy is None:
            raise CommandError(f"no draft of policy {draft!r}")
        try:
            simulation = simulate_policy(draft=policy, as_of=day)
        except DomainError as error:
            raise CommandError(error.detail) from error
        out = self.stdout.write
        out(f"{policy} (draft) against {simulation.current}, as of {day}: {simulation.seniors} seniors")
        out("tier moves (from -> to: seniors)")
        for move in simulation.tier_moves:
            mark = "*" if move["moved"] else " "
            out(f" {mark} {_tier(move['from'])} -> {_tier(move['to'])}: {move['seniors']}")
        out("care-visit class moves (from -> to: seniors)")
        for move in simulation.care_moves:
            mark = "*" if move["moved"] else " "
            out(f" {mark} {move['from'] or '-'} -> {move['to'] or '-'}: {move['seniors']}")
        out("monthly voucher budget (district: current -> draft, difference)")
        for row in [*simulation.districts, simulation.total]:
            name = f"{row['region'].code} {row['region'].name}" if row["region"] else "whole city"
            out(
                f"   {name}: {row['current'].amount} -> {row['draft'].amount} "
                f"({row['difference'].amount:+}), {row['moved']} of {row['seniors']} seniors move"
            )
