"""The printed voucher cards (PDF): a community's month from the registry list, one voucher's
current card from the senior's page (after a reissue, the new card).

GET only, and nothing changes: the URLs carry a voucher id, a month and a community code, never
anything personal. Who may see the vouchers (`selectors.visible_to`) and holds
`vouchers.view_voucher` may print them; others get the project's 403 or 404.
"""

import io
import logging

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_safe

from config import pages
from config.i18n import name_in_language
from config.months import parse_month
from eligibility.selectors import communities_visible_to
from vouchers.cards import CardFontMissing, cards_for, render_cards
from vouchers.models import Voucher
from vouchers.selectors import voucher_to_print, vouchers_to_print

logger = logging.getLogger(__name__)

NO_CARDS = gettext_lazy(
    "Printing voucher cards is for community workers, officers and bureau administrators."
)
may_print = pages.page_for(lambda user: user.has_perm("vouchers.view_voucher"), NO_CARDS)


def _refused(request, reason: str, *, back: str, status: int):
    return render(request, "vouchers/card_refused.html", {"reason": reason, "back": back}, status=status)


def _pdf(request, vouchers, *, filename: str, back: str):
    cards = cards_for(vouchers)
    out = io.BytesIO()
    try:
        render_cards(cards, out, title=f"{cards[0].month} {cards[0].community}")
    except CardFontMissing as error:
        logger.error("voucher cards not printed: %s", error)
        reason = _(
            "Cards cannot be printed right now: the server lacks the Chinese font. Tell the system administrator."
        )
        return _refused(request, reason, back=back, status=503)
    response = HttpResponse(out.getvalue(), content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    return response


@require_safe
@may_print
def community_cards(request):
    """`?period=YYYY-MM&community=CODE`: the cards of the community's ACTIVE vouchers of that
    month that the user may see, in the registry list's order."""
    back = reverse("registry-list")
    try:
        period = parse_month(request.GET.get("period", ""))
    except ValueError:
        return _refused(request, _("Choose the month of the cards to print."), back=back, status=400)
    community = communities_visible_to(request.user).filter(code=request.GET.get("community", "")).first()
    if community is None:
        raise Http404
    vouchers = list(vouchers_to_print(period=period, community=community, user=request.user))
    if not vouchers:
        reason = _("%(community)s has no vouchers for %(month)s yet, so there are no cards to print.") % {
            "community": name_in_language(community),
            "month": formats.date_format(period, "YEAR_MONTH_FORMAT"),
        }
        return _refused(request, reason, back=back, status=404)
    return _pdf(request, vouchers, filename=f"cards-{community.code}-{period:%Y-%m}.pdf", back=back)


@require_safe
@may_print
def voucher_card(request, voucher_id: int):
    """One voucher's card, with its current code: the card to print after a reissue."""
    voucher = voucher_to_print(voucher_id=voucher_id, user=request.user)
    if voucher is None:
        raise Http404
    back = reverse("registry-senior", args=[voucher.senior_id])
    if voucher.status != Voucher.Status.ACTIVE or voucher.valid_until < timezone.localdate():
        reason = _("This voucher can no longer be used, so there is no card to print.")
        return _refused(request, reason, back=back, status=409)
    return _pdf(request, [voucher], filename=f"card-{voucher.pk}-{voucher.period:%Y-%m}.pdf", back=back)
