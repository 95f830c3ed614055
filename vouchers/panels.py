"""The vouchers panel of a senior's registry page: their vouchers and their latest services.

Registered with `eligibility.panels` from `VouchersConfig.ready()`, so the registry shows money
without the eligibility app importing vouchers (DESIGN.md §3). The registry page has already
decided that the user may see this senior (`eligibility.selectors.visible_to`).
"""

from django.utils import timezone

from config.i18n import name_in_language
from eligibility.selectors import can_change
from vouchers.selectors import redemptions_of_senior, vouchers_of_senior

VOUCHERS_SHOWN = 12  # a year of months
SERVICES_SHOWN = 10


def _usable(voucher, today) -> bool:
    return voucher.status == voucher.Status.ACTIVE and voucher.valid_until >= today


def senior_vouchers_panel(request, senior):
    """(template, context) with the senior's latest vouchers and services; None for a user
    without the vouchers view permission."""
    if not request.user.has_perm("vouchers.view_voucher"):
        return None
    vouchers = vouchers_of_senior(senior=senior, limit=VOUCHERS_SHOWN)
    redemptions = redemptions_of_senior(senior=senior, limit=SERVICES_SHOWN)
    services = [
        {
            "served_on": timezone.localtime(redemption.served_at).date(),
            "item": name_in_language(redemption.service_item),
            "provider": name_in_language(redemption.provider),
            "quantity": redemption.quantity,
            "amount": redemption.amount.amount,
            "government_share": redemption.government_share.amount,
            "senior_share": redemption.senior_share.amount,
            "voided": hasattr(redemption, "void"),
        }
        for redemption in redemptions
    ]
    today = timezone.localdate()
    may_reissue = request.user.has_perm("vouchers.reissue_voucher") and can_change(request.user, senior)
    rows = [
        {
            "id": voucher.pk,
            # A card that can still be used is printed from here (after a reissue: the new one).
            "printable": _usable(voucher, today),
            "reissuable": may_reissue and _usable(voucher, today),
            "reissues": voucher.token_version - 1,
            "period": voucher.period,
            "tier": name_in_language(voucher.tier),
            "face_value": voucher.face_value.amount,
            "balance": voucher.balance.amount,
            "status": voucher.status,
            "status_label": voucher.get_status_display(),
        }
        for voucher in vouchers
    ]
    return "registry/panel_vouchers.html", {"vouchers": rows, "services": services}
