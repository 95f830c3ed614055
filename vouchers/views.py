"""Pages of the vouchers app: the senior's own voucher page (what the QR code opens)."""

import datetime as dt
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from config import pages
from config.errors import DomainError
from config.i18n import name_in_language
from vouchers import tokens
from vouchers.models import Voucher
from vouchers.selectors import services_on_voucher, voucher_for_senior_page
from vouchers.services import reissue_voucher

RECENT_SERVICES = 20


@dataclass(frozen=True)
class ServiceRow:
    served_on: dt.date
    item: str
    provider: str
    amount: object
    government_share: object
    senior_share: object


def _private(response):
    # The URL is the key to the page: never cache it anywhere, never index it.
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


@require_safe
def senior_voucher(request, token: str):
    parsed = tokens.parse_token(token)
    voucher = voucher_for_senior_page(voucher_id=parsed.voucher_id) if parsed else None
    if voucher is None:
        # Forged, altered or unknown: one answer, so the page tells nothing about why.
        return _private(render(request, "vouchers/senior_voucher.html", {"state": "invalid"}, status=404))
    if parsed.version != voucher.token_version or voucher.status == Voucher.Status.REVOKED:
        return _private(render(request, "vouchers/senior_voucher.html", {"state": "replaced"}, status=410))

    today = timezone.localdate()
    if voucher.status == Voucher.Status.EXPIRED or today > voucher.valid_until:
        state = "expired"
    elif today < voucher.valid_from:
        state = "not_yet_valid"
    else:
        state = "active"
    rows = [
        ServiceRow(
            served_on=timezone.localtime(redemption.served_at).date(),
            item=name_in_language(redemption.service_item),
            provider=name_in_language(redemption.provider),
            amount=redemption.amount.amount,
            government_share=redemption.government_share.amount,
            senior_share=redemption.senior_share.amount,
        )
        for redemption in services_on_voucher(voucher=voucher)
    ]
    context = {
        "state": state,
        "voucher": voucher,
        "masked_name": voucher.senior.masked_name,
        "tier_name": name_in_language(voucher.tier),
        "services": rows,
    }
    return _private(render(request, "vouchers/senior_voucher.html", context))


@login_required
@require_POST
def voucher_reissue(request, voucher_id: int):
    """The worker's "new card" button on the senior's registry page: the old code is refused
    from now on; back to the senior's page with the new card's link."""
    voucher = Voucher.objects.filter(pk=voucher_id).only("senior_id").first()
    if voucher is None:
        raise Http404
    back = reverse("registry-senior", args=[voucher.senior_id])  # the message shows at the top
    try:
        reissue = reissue_voucher(
            voucher_id=voucher_id, reason=request.POST.get("reason", ""), by=request.user
        )
    except DomainError as error:
        if error.code == "not_found":
            raise Http404 from None
        if error.code == "not_permitted":
            return pages.forbidden(request, error.detail)
        messages.error(request, error.detail)
        return redirect(back)
    messages.success(
        request,
        _("Reissued: the old card's code is refused from now on. Print the new card from %(url)s")
        % {"url": tokens.voucher_url(reissue.voucher)},
    )
    return redirect(back)
