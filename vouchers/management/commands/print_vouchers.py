import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.months import parse_month
from eligibility.models import Region
from vouchers.cards import CardFontMissing, cards_for, render_cards
from vouchers.selectors import vouchers_to_print


class Command(BaseCommand):
    help = (
        "Write the printed cards (A4 PDF, six to a page, with cut marks) of a community's ACTIVE "
        "vouchers of a month, in the registry's order (pinyin initials of the name)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument("--community", required=True, help="the community's region code")
        parser.add_argument("--out", required=True, help="the PDF to write")

    def handle(self, *args, period, community, out, **options):
        try:
            month = parse_month(period)
        except ValueError as error:
            raise CommandError(str(error)) from None
        region = Region.objects.filter(code=community, level=Region.Level.COMMUNITY).first()
        if region is None:
            raise CommandError(f"no community with the code {community!r}")
        vouchers = list(vouchers_to_print(period=month, community=region))
        if not vouchers:
            raise CommandError(
                f"{region.name} ({region.code}) has no active vouchers for {period}: "
                f"issue them first (manage.py issue_vouchers --period {period})."
            )
        pdf = io.BytesIO()  # written whole or not at all: no half file to print from
        try:
            written = render_cards(cards_for(vouchers), pdf, title=f"{period} {region.name}")
        except CardFontMissing as error:
            raise CommandError(str(error)) from None
        try:
            Path(out).write_bytes(pdf.getvalue())
        except OSError as error:
            raise CommandError(f"cannot write {out}: {error.strerror or error}") from None
        self.stdout.write(f"{written} cards of {region.name} ({region.code}) for {period} written to {out}")
