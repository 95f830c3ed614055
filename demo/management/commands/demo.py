from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from config.errors import DomainError
from config.months import format_month
from config.roles import ROLE_NAMES
from demo.city import PASSWORD, build_demo_city
from vouchers.tokens import voucher_url


class Command(BaseCommand):
    help = "Migrate if needed and load the demo city (idempotent), then print the demo logins."

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        try:
            city = build_demo_city()
        except DomainError as error:
            raise CommandError(error.detail) from error

        counts = city.counts
        self.stdout.write(
            _(
                "Demo city: %(communities)d communities, %(providers)d providers, %(seniors)d seniors; "
                "%(last)s: %(last_vouchers)d vouchers, %(last_redemptions)d redemptions, ready to settle; "
                "%(this)s: %(this_vouchers)d vouchers, %(this_redemptions)d redemptions so far."
            )
            % {
                "communities": counts["communities"],
                "providers": counts["providers"],
                "seniors": counts["seniors"],
                "last": format_month(city.last_month),
                "last_vouchers": counts["vouchers_last_month"],
                "last_redemptions": counts["redemptions_last_month"],
                "this": format_month(city.this_month),
                "this_vouchers": counts["vouchers_this_month"],
                "this_redemptions": counts["redemptions_this_month"],
            }
        )
        self.stdout.write("")
        self.stdout.write(_("Demo logins (password %(password)s):") % {"password": PASSWORD})
        for login in city.logins:
            line = f"  {login.username:<10} {ROLE_NAMES[login.role]}"
            if login.provider is not None:
                line += f" · {login.provider.name}"
            if login.username == "bureau":
                line += " · " + _("also the admin site, /admin/")
            self.stdout.write(line)

        voucher = city.example_voucher
        if voucher is not None:
            self.stdout.write("")
            self.stdout.write(
                _("An example voucher of %(month)s (%(name)s, %(tier)s, voucher %(id)d):")
                % {
                    "month": format_month(voucher.period),
                    "name": voucher.senior.masked_name,
                    "tier": voucher.tier_code,
                    "id": voucher.pk,
                }
            )
            self.stdout.write(f"  {voucher_url(voucher)}")
            self.stdout.write(_("More vouchers and their QR codes:"))
            self.stdout.write("  python manage.py voucher_qr --voucher <id> [--png voucher.png]")
