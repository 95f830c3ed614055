from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.months import month_of, parse_month
from eligibility.errors import EligibilityError
from eligibility.services import normalise_id_card_number
from vouchers import tokens
from vouchers.models import Voucher
from vouchers.qr import write_qr_png


class Command(BaseCommand):
    help = "Print a voucher's QR token and the senior-page URL it encodes; write the QR image with --png."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--voucher", type=int, help="voucher id")
        which.add_argument("--senior", help="the senior's ID-card number")
        parser.add_argument("--period", help="YYYY-MM (with --senior; default: this month)")
        parser.add_argument("--png", help="write the QR code image to this path")

    def handle(self, *args, voucher=None, senior=None, period=None, png=None, **options):
        if voucher is not None:
            found = Voucher.objects.filter(pk=voucher).first()
        else:
            try:
                number = normalise_id_card_number(senior)
                month = parse_month(period) if period else month_of(timezone.now())
            except (EligibilityError, ValueError) as error:
                raise CommandError(str(getattr(error, "detail", error))) from None
            found = Voucher.objects.filter(senior__id_card_number=number, period=month).first()
        if found is None:
            raise CommandError("No such voucher.")
        self.stdout.write(
            f"voucher: {found.pk} ({found.period:%Y-%m}, {found.tier_code}, balance {found.balance})"
        )
        self.stdout.write(f"token:   {tokens.voucher_token(found)}")
        self.stdout.write(f"url:     {tokens.voucher_url(found)}")
        if png:
            try:
                write_qr_png(tokens.voucher_url(found), png)
            except OSError as error:
                raise CommandError(f"cannot write {png}: {error.strerror or error}") from None
            self.stdout.write(f"QR image written to {png}")
