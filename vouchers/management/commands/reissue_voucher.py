from django.core.management.base import BaseCommand, CommandError

from config.commands import user_named
from config.errors import DomainError
from vouchers import tokens
from vouchers.services import reissue_voucher


class Command(BaseCommand):
    help = (
        "A new QR code for a lost or damaged voucher: the old code is refused voucher_revoked from "
        "this moment (on scanners offline after their next sync). Prints the new token and URL."
    )

    def add_arguments(self, parser):
        parser.add_argument("--voucher", type=int, required=True, help="voucher id")
        parser.add_argument("--reason", required=True, help="why (lost, damaged, …); kept with the reissue")
        parser.add_argument(
            "--by", help="the username recorded as reissuing it, within their scope (default: a script)"
        )

    def handle(self, *args, voucher, reason, by=None, **options):
        user = user_named(by)
        try:
            reissue = reissue_voucher(voucher_id=voucher, reason=reason, by=user)
        except DomainError as error:
            raise CommandError(error.detail) from error
        found = reissue.voucher
        self.stdout.write(
            f"voucher {found.pk}: version {reissue.old_version} -> {reissue.new_version}; the old code is refused."
        )
        self.stdout.write(f"token:   {tokens.voucher_token(found)}")
        self.stdout.write(f"url:     {tokens.voucher_url(found)}")
