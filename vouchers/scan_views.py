"""The provider staff's phone scanner, /scan/ (DESIGN.md §5): a page shell whose scripts
(static/js/scan/) sign the phone in with a device token, scan the senior's card, call the
scanner API (/api/v1/) and, without network, check the card on the phone and keep the records
until they can be uploaded.

No sign-in to open it: the phone signs itself in with its own form and keeps the device token in
the browser. The page holds no personal data; what the scripts show comes from the API.
"""

import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config.middleware import csp_allow_wasm

# Every text the scripts show, by key, translated here (the scripts have no gettext of their own).
# %(name)s placeholders are filled in by the script.
TEXT = {
    "page_title": _("Scan vouchers"),
    # Sign-in and the signed-in bar
    "sign_in_title": _("Sign this phone in"),
    "sign_in_intro": _("Sign in once with your staff account. This phone then stays signed in."),
    "username": _("Username"),
    "password": _("Password"),
    "device_name": _("Phone name"),
    "device_name_default": _("Phone %(date)s"),
    "sign_in": _("Sign in"),
    "signing_in": _("Signing in…"),
    "sign_in_failed": _("Sign-in failed. Check the username and password."),
    "sign_in_again": _("Please sign in again. Records saved on this phone are kept."),
    "sign_out": _("Sign this phone out"),
    "sign_out_confirm": _("Sign this phone out? You will need the password to sign in again."),
    "sign_out_refused": _(
        "%(count)s records are still waiting to upload. Connect to the network and wait until they "
        "are uploaded before signing out."
    ),
    "online": _("Online"),
    "offline": _("Offline"),
    # Scanning
    "scan": _("Scan"),
    "scan_title": _("Scan the senior's card"),
    "scan_hint": _("Point the camera at the QR code on the card."),
    "scan_checkout_hint": _("Scan the same senior's card to check out."),
    "cancel": _("Cancel"),
    "use_code": _("Use the code"),
    "code_label": _("Code or link on the card"),
    "check": _("Check"),
    "camera_failed": _(
        "The camera could not be opened. Allow camera access in the browser settings, or type the "
        "code instead."
    ),
    "checking": _("Checking the card…"),
    # The voucher and its items
    "service_voucher": _("Service voucher"),
    "senior": _("Senior"),
    "remaining_balance": _("Remaining balance"),
    "face_value": _("Face value"),
    "choose_service": _("Choose the service"),
    "no_items": _("Your organisation has no service it may deliver on this card here."),
    "price_per_unit": _("¥%(price)s per %(unit)s"),
    "unit_hour": _("hour"),
    "unit_visit": _("visit"),
    "unit_meal": _("meal"),
    "hourly_hint": _("By the hour: check in on arrival, check out on leaving."),
    "checked_offline": _("Checked on this phone without network: the balance is not known here."),
    # Quantity, price and the senior's share
    "quantity": _("Quantity"),
    "less": _("Less"),
    "more": _("More"),
    "amount": _("Amount"),
    "government_share": _("Paid by the voucher"),
    "senior_share": _("Senior pays"),
    "senior_pays_now": _("The senior pays ¥%(amount)s now"),
    "why_tier": _("Their service type: the voucher pays %(percent)s%% of the price, the senior the rest."),
    "why_tier_plain": _("Their service type pays only part of the price; the senior pays the rest."),
    "why_balance": _("The voucher's balance is not enough: only ¥%(balance)s is left."),
    "confirm_senior_share": _("I told the senior and received ¥%(amount)s"),
    "figures_changed": _("The figures changed: please check them again."),
    "confirm_service": _("Confirm the service"),
    "check_in": _("Check in"),
    "back": _("Back"),
    "recording": _("Recording…"),
    "offline_shares": _(
        "Without network the voucher's and the senior's parts are worked out on upload, by the "
        "senior's service type."
    ),
    # Results
    "recorded": _("Recorded"),
    "service": _("Service"),
    "next_senior": _("Next senior"),
    "saved_pending": _("Saved on this phone, waiting to upload"),
    "saved_pending_hint": _("It uploads by itself when the network is back."),
    "checked_in": _("Checked in"),
    "checked_in_hint": _(
        "Started at %(time)s. When the service is done, press “Check out” and scan the card again."
    ),
    "hours_value": _("%(hours)s hours"),
    # The visit in progress
    "visit_open_title": _("Visit in progress"),
    "started": _("Started"),
    "visit_time": _("Time"),
    "duration": _("Duration"),
    "at_most": _("At most"),
    "hours_minutes": _("%(hours)s h %(minutes)s min"),
    "minutes": _("%(minutes)s min"),
    "visit_too_long": _("Longer than the maximum: check out now."),
    "check_out": _("Check out"),
    "cancel_visit": _("Cancel this visit"),
    "cancel_reason": _("Why is the visit cancelled?"),
    "cancel_visit_confirm": _("Cancel the visit"),
    "visit_cancelled": _("The visit was cancelled; nothing was charged."),
    # Records on this phone
    "queue_title": _("Records on this phone"),
    "pending": _("Waiting to upload"),
    "synced": _("Uploaded"),
    "refused": _("Not accepted"),
    "dismiss": _("Dismiss"),
    "upload_now": _("Upload now"),
    "unknown_outcome": _("Result unknown: kept, and it will be sent again by itself."),
    "other_account": _("Recorded by %(name)s: it is sent when %(name)s signs in on this phone again."),
    # This phone's recent services
    "recent_title": _("Recent services from this phone"),
    "recent_none": _("None yet."),
    "voided": _("Voided"),
    "recorded_offline": _("Recorded offline"),
    "void": _("Void"),
    "void_reason": _("Why void it? (required)"),
    "void_confirm": _("Void this service"),
    "voided_done": _("Voided: ¥%(amount)s went back to the voucher."),
    "refresh": _("Refresh"),
    # Refusals, by the API's error code: what happened, in plain words, and what to do next
    "not_recorded": _("Not recorded"),
    "error_invalid_token": _("This is not a valid service voucher QR code."),
    "error_voucher_revoked": _(
        "This voucher was stopped or replaced by a new card. Ask the senior to contact their "
        "community worker for the new card."
    ),
    "error_voucher_expired": _("This voucher has expired. Ask the senior for this month's card."),
    "error_voucher_not_yet_valid": _(
        "This voucher cannot be used yet. Ask the senior for this month's card."
    ),
    "error_outside_service_area": _(
        "This senior lives outside your organisation's service area. Do not deliver the service here; "
        "tell your manager."
    ),
    "error_not_contracted": _(
        "Your organisation has no contract for this service here. Choose another service, or ask your "
        "manager."
    ),
    "error_period_closed": _("This month is closed to new services. Ask your manager."),
    "error_rate_limited": _("Too many scans in a short time. Wait %(seconds)s seconds and try again."),
    "error_offline_too_late": _(
        "This record was kept on the phone too long to be accepted. Tell your manager about this service."
    ),
    "error_insufficient_balance": _(
        "The voucher's balance cannot pay for this service. Tell the senior; they may pay the price "
        "themselves."
    ),
    "error_visit_open": _("You already have a visit in progress. Check out of it, or cancel it, first."),
    "error_visit_closed": _("This visit is already checked out or cancelled."),
    "error_visit_too_short": _("The visit is too short to be charged. Check out later, or cancel the visit."),
    "error_visit_overdue": _(
        "The visit was left open longer than allowed and was closed without a charge. Tell your manager."
    ),
    "error_not_permitted": _("This account may not record services. Ask your manager."),
    "error_not_found": _("That record was not found. Refresh and try again."),
    "error_already_voided": _("This service was already voided."),
    "error_idempotency_conflict": _("This record conflicts with one already uploaded. Tell your manager."),
    "error_invalid_input": _("Something in the record is not valid. Check it and try again."),
    "error_not_per_hour": _("This service is not charged by the hour: record it with its quantity."),
    "error_use_check_in": _("This service is charged by the hour: use check-in and check-out."),
    "error_not_authenticated": _("Please sign in again. Records saved on this phone are kept."),
    "error_unknown": _("The service was not recorded."),
    "error_network": _("No network: try again when the phone is online."),
    "error_offline_unverifiable": _(
        "This card cannot be checked without network. Try again when the phone is online."
    ),
    "error_offline_no_items": _(
        "The list of services is not on this phone yet. Connect to the network once, then try again."
    ),
    "error_wrong_card": _("This is not the card of the visit in progress. Scan the same senior's card."),
}


def scan_text() -> dict[str, str]:
    """The scripts' texts in the active language."""
    return {key: str(text) for key, text in TEXT.items()}


SCRIPTS = Path(__file__).resolve().parent.parent / "static" / "js" / "scan"
# What the page loads besides its modules, kept by the service worker for opening without network.
ASSETS = (
    "css/app.css",
    "css/scan.css",
    "img/logo.svg",
    "vendor/barcode-detector/ponyfill.js",
    "vendor/zxing-wasm/zxing_reader.wasm",
    "vendor/noble-ed25519/index.js",
)


def scan_config() -> dict:
    """Where the scripts find the API, the decoder and the service worker (the static URLs as
    the storage names them)."""
    return {
        "api": reverse("api-auth-token").removesuffix("auth/token"),
        "page": reverse("scan"),
        "service_worker": reverse("scan-service-worker"),
        "decoder": static("vendor/barcode-detector/ponyfill.js"),
        "decoder_wasm": static("vendor/zxing-wasm/zxing_reader.wasm"),
        "ed25519": static("vendor/noble-ed25519/index.js"),
        "time_zone_offset_minutes": 8 * 60,  # Asia/Shanghai: vouchers' months, no summer time
    }


def offline_assets() -> list[str]:
    """The URLs of the files the page loads. The modules that another imports by relative path
    are fetched by their plain names (with ManifestStaticFilesStorage too: collectstatic keeps
    both), the others as {% static %} names them."""
    plain = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else f"/{settings.STATIC_URL}"
    modules = sorted(p.name for p in SCRIPTS.glob("*.js") if p.name != "sw.js")
    urls = [static("js/scan/main.js"), *(f"{plain}js/scan/{name}" for name in modules)]
    # The decoder's main part, which its entry module imports by relative path
    urls += [static(name) for name in ASSETS] + [f"{plain}vendor/barcode-detector/zxing-exported.js"]
    return list(dict.fromkeys(urls))


@require_safe
def service_worker(request):
    """The scanner's service worker, at /scan/sw.js so that its scope is /scan/: the page opens
    without network from what it kept. The constants it needs come first; VERSION changes with the
    list of files (their hashed names, in production) and the worker's code, and a new version
    drops the old copies."""
    assets = offline_assets()
    code = (SCRIPTS / "sw.js").read_text()
    version = hashlib.sha256(json.dumps([assets, code]).encode()).hexdigest()[:12]
    head = (
        f"const PAGE = {json.dumps(reverse('scan'))};\n"
        f"const ASSETS = {json.dumps(assets)};\n"
        f"const VERSION = {json.dumps(version)};\n"
    )
    response = HttpResponse(head + code, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"  # the browser checks for a new worker on every visit
    return response


@csp_allow_wasm  # the QR decoder, where the phone has none built in, is WebAssembly
@never_cache
@require_safe
def scanner(request):
    return render(request, "scan/scanner.html", {"scan_text": scan_text(), "scan_config": scan_config()})
