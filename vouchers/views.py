"""Pages of the vouchers app: the senior's own voucher page (what the QR code opens) and its
"this service did not happen"; the worker's "new card" button."""

import datetime as dt
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST, require_safe
from rest_framework.throttling import BaseThrottle

from config import pages
from config.errors import DomainError
from config.i18n import name_in_language
from vouchers import tokens
from vouchers.errors import VoucherError
from vouchers.models import Voucher
from vouchers.selectors import (
    service_on_voucher,
    services_for_senior_page,
    voucher_contacts,
    voucher_for_senior_page,
)
from vouchers.services import file_dispute, reissue_voucher

RECENT_SERVICES = 20
# The states of the senior's page, and the status each answers with.
STATE_STATUS = {"invalid": 404, "replaced": 410, "revoked": 410}
# How a refused dispute answers (the page shows the refusal's message).
DISPUTE_REFUSAL_STATUS = {"not_found": 404, "already_voided": 404, "rate_limited": 429}
NOT_ON_VOUCHER = gettext_lazy("This service is not on this voucher.")


@dataclass(frozen=True)
class ServiceRow:
    pk: int
    served_on: dt.date
    item: str
    provider: str
    amount: object
    government_share: object
    senior_share: object
    disputed: bool  # an open dispute: "reported" instead of the button


def _row(redemption) -> ServiceRow:
    return ServiceRow(
        pk=redemption.pk,
        served_on=timezone.localtime(redemption.served_at).date(),
        item=name_in_language(redemption.service_item),
        provider=name_in_language(redemption.provider),
        amount=redemption.amount.amount,
        government_share=redemption.government_share.amount,
        senior_share=redemption.senior_share.amount,
        disputed=getattr(redemption, "has_open_dispute", False),
    )


@dataclass(frozen=True)
class ContactRow:
    role: str
    name: str
    tel: str  # digits only, for the tel: link
    phone_groups: list[str]  # as people write it: 0571 8799 2002, 139 1234 5678


def _phone_groups(phone: str) -> list[str]:
    """A stored phone (13912345678, 0571-87992002) in the groups people read it in."""
    area, _dash, number = phone.rpartition("-")
    if not area and len(number) == 11:  # a mobile: 3 4 4
        return [number[:3], number[3:7], number[7:]]
    return [part for part in (area, number[:-4], number[-4:]) if part]


def _contacts(voucher) -> dict:
    """Whom the senior calls (`selectors.voucher_contacts`): the community's worker, then each
    provider's hotline; those without a phone are named but get no button."""
    contacts = voucher_contacts(voucher)
    rows = []
    if contacts.worker_name or contacts.worker_phone:
        name = " · ".join(part for part in (contacts.worker_name, contacts.community) if part)
        rows.append((_("Community worker"), name, contacts.worker_phone))
    rows += [(_("Service hotline"), provider.name, provider.phone) for provider in contacts.providers]
    return {
        "community": contacts.community,
        "has_worker_phone": bool(contacts.worker_phone),
        "rows": [
            ContactRow(
                role=role,
                name=name,
                tel=phone.replace("-", ""),
                phone_groups=_phone_groups(phone) if phone else [],
            )
            for role, name, phone in rows
        ],
    }


def _private(response):
    # The URL is the key to the page: never cache it anywhere, never index it.
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def _senior_page_state(token: str) -> tuple[str, Voucher | None]:
    """What the code on the card opens: (state, voucher). States: invalid (forged, altered or
    unknown: one answer, so the page tells nothing about why), revoked (the whole voucher: the
    senior moved out), replaced (a new card was issued), expired, not_yet_valid, active."""
    parsed = tokens.parse_token(token)
    voucher = voucher_for_senior_page(voucher_id=parsed.voucher_id, period=parsed.period) if parsed else None
    if voucher is None:
        return "invalid", None
    if voucher.status == Voucher.Status.REVOKED:
        return "revoked", voucher
    if parsed.version != voucher.token_version:
        return "replaced", voucher
    today = timezone.localdate()
    if voucher.status == Voucher.Status.EXPIRED or today > voucher.valid_until:
        return "expired", voucher
    if today < voucher.valid_from:
        return "not_yet_valid", voucher
    return "active", voucher


def _render_senior_page(request, token: str, state: str, voucher: Voucher | None):
    context = {"state": state, "token": token}
    if voucher is not None:
        # The card carries the same contacts: a replaced card's finder learns nothing more.
        context["contacts"] = _contacts(voucher)
    if state not in STATE_STATUS:
        context |= {
            "voucher": voucher,
            "masked_name": voucher.senior.masked_name,
            "tier_name": name_in_language(voucher.tier),
            # One line, sized to fit by its length (senior-page.css): it must never break.
            "balance_text": f"¥{voucher.balance.amount:.2f}",
            "services": [
                _row(redemption)
                for redemption in services_for_senior_page(voucher=voucher, limit=RECENT_SERVICES)
            ],
        }
    response = render(request, "vouchers/senior_voucher.html", context, status=STATE_STATUS.get(state, 200))
    return _private(response)


@require_safe
def senior_voucher(request, token: str):
    """The senior's own page (no sign-in; the signed code is the key): what the voucher can
    still pay, or first and in large print why it cannot; the month's services, each with
    "this service did not happen"; whom to call."""
    state, voucher = _senior_page_state(token)
    return _render_senior_page(request, token, state, voucher)


def _client_address(request) -> str:
    # The same address the API's throttles key on (NUM_PROXIES: from X-Forwarded-For behind the proxy).
    return BaseThrottle().get_ident(request)


@require_POST
def senior_dispute(request, token: str):
    """A service's button "this service did not happen" on the senior's page (POST, CSRF, no
    sign-in): without `confirm`, the service and an optional note and callback phone to confirm;
    with it, `services.file_dispute` records it (or refuses: every try counts towards the
    client's limit) and the answer says so in plain words."""
    state, voucher = _senior_page_state(token)
    if state in STATE_STATUS:
        return _render_senior_page(request, token, state, voucher)
    service = service_on_voucher(voucher=voucher, redemption_id=request.POST.get("service"))
    note, phone = request.POST.get("note", ""), request.POST.get("callback_phone", "")
    context = {"token": token, "contacts": _contacts(voucher), "note": note, "callback_phone": phone}
    if service is not None:
        context["service"] = _row(service)
    if "confirm" not in request.POST:
        if service is None:
            return _dispute_page(request, context | {"step": "refused", "message": NOT_ON_VOUCHER}, 404)
        step = "already" if service.has_open_dispute else "confirm"
        return _dispute_page(request, context | {"step": step})
    try:
        result = file_dispute(
            token=token,
            redemption_id=request.POST.get("service"),
            note=note,
            callback_phone=phone,
            client_address=_client_address(request),
        )
    except VoucherError as error:
        if error.code in ("invalid_token", "voucher_revoked"):  # the card changed meanwhile
            return _render_senior_page(request, token, *_senior_page_state(token))
        if error.field and service is not None:
            errors = {error.field: error.detail}
            return _dispute_page(request, context | {"step": "confirm", "errors": errors}, 400)
        # A voided service is, for the senior, simply not on the voucher any more.
        message = NOT_ON_VOUCHER if error.code == "already_voided" else error.detail
        status = DISPUTE_REFUSAL_STATUS.get(error.code, 400)
        return _dispute_page(request, context | {"step": "refused", "message": message}, status)
    return _dispute_page(request, context | {"step": "recorded" if result.created else "already"})


def _dispute_page(request, context: dict, status: int = 200):
    return _private(render(request, "vouchers/senior_dispute.html", context, status=status))


@login_required
@require_POST
def voucher_reissue(request, voucher_id: int):
    """The worker's "new card" button on the senior's registry page: the old code is refused
    from now on; back to the senior's page, whose message links to the new card's PDF."""
    from django.utils.html import format_html  # the one page of this module that writes a link

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
        format_html(
            '{} <a class="button button-primary" href="{}" download>{}</a> {}',
            _("Reissued: the old card's code is refused from now on."),
            reverse("voucher-card", args=[voucher_id]),
            _("Print the new card"),
            _("The new card opens %(url)s") % {"url": tokens.voucher_url(reissue.voucher)},
        ),
    )
    return redirect(back)
