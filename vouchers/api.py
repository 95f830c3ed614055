"""The scanner's API: verify a voucher, redeem it, check in and out, list and void redemptions.

Thin: parse the body, call a selector or service, render. Every refusal is a DomainError that
`config.api.exception_handler` turns into `{"code", "detail"}`. Every scan leaves a ScanAttempt:
an accepted one in the service's own transaction, a refused one (malformed and rate-limited
included) here. Once a service has committed, the request is marked recorded, so that even a
failure while answering says "recorded" (config.api.json_server_error), never "nothing changed".
"""

import datetime as dt
import logging
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import mark_recorded
from config.months import local_date
from config.throttling import ExactScopedRateThrottle, ScanRateThrottle
from providers.api import ErrorSerializer
from providers.models import Device
from vouchers import selectors, services, tokens
from vouchers.errors import VoucherError
from vouchers.models import Visit

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 415, 429)}
READ_ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 429)}
logger = logging.getLogger("vouchers.api")


def _staff_of(request):
    staff = getattr(request.user, "staff_member", None)
    if staff is None or not staff.is_active or not staff.provider.is_active:
        raise VoucherError(
            "not_permitted", _("This account is not provider staff; only staff can scan vouchers.")
        )
    return staff


def _money(value) -> str:
    return f"{value.amount:.2f}"


def _device_of(request):
    """The signed-in device, when the request came with a device token (not a browser session)."""
    return request.auth if isinstance(request.auth, Device) else None


@extend_schema_field(OpenApiTypes.STR)
class MoneyTextField(serializers.Field):
    """A Money as the string "42.00" (never a float), read-only."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value) -> str:
        return _money(value)


CARD_CODE_HELP = "The bare 120-character code, or the /v/<code>/ URL the QR encodes"


def token_field():
    # No minimum beyond one character: a short misread is refused `invalid_token`, as offline.
    return serializers.CharField(max_length=500, help_text=CARD_CODE_HELP)


def idempotency_key_field(
    help_text="8-64 letters, digits or _ . : -; unique per staff member (all their phones): a repeat returns the first result",
):
    return serializers.RegexField(
        services.IDEMPOTENCY_KEY.pattern, min_length=8, max_length=64, help_text=help_text
    )


class LocationSerializer(serializers.Serializer):
    latitude = serializers.FloatField(min_value=-90, max_value=90)
    longitude = serializers.FloatField(min_value=-180, max_value=180)
    accuracy = serializers.FloatField(
        min_value=0, max_value=1e6, required=False, allow_null=True, help_text="metres"
    )


class ScanBodySerializer(serializers.Serializer):
    """What every recording scan may carry besides the card."""

    scanned_at = serializers.DateTimeField(
        required=False,
        help_text="Only for a scan made offline and sent later: the phone's time of the scan (ISO 8601 with "
        "offset), within the grace window (SCAN_OFFLINE_GRACE_HOURS, default 72)",
    )
    location = LocationSerializer(required=False, help_text="Where the phone was, when it gave a position")

    def location_value(self):
        location = self.validated_data.get("location")
        if not location:
            return None
        accuracy = location.get("accuracy")
        return services.Location(
            latitude=Decimal(f"{location['latitude']:.6f}"),
            longitude=Decimal(f"{location['longitude']:.6f}"),
            accuracy=None if accuracy is None else round(accuracy),
        )


class ConfirmSerializer(ScanBodySerializer):
    confirm_senior_share = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
        coerce_to_string=False,
        help_text="The senior share the senior agreed to pay now (from a confirmation_required quote)",
    )


class VerifyRequestSerializer(serializers.Serializer):
    token = token_field()


class ServiceItemOfferSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    name_en = serializers.CharField()
    unit = serializers.ChoiceField(choices=["hour", "visit", "meal"])
    unit_price = serializers.CharField()
    quantity_step = serializers.CharField(
        help_text="the smallest billable increment: a quantity must be a positive multiple of it"
    )
    per_hour = serializers.BooleanField(help_text="recorded by check-in and check-out, not with a quantity")
    increment_minutes = serializers.IntegerField(
        allow_null=True, help_text="per-hour items: a visit's length is rounded to this"
    )
    max_minutes = serializers.IntegerField(
        allow_null=True, help_text="per-hour items: a visit not checked out within this is an exception"
    )


class VoucherScanSerializer(serializers.Serializer):
    voucher_id = serializers.IntegerField()
    masked_name = serializers.CharField()
    period = serializers.CharField()
    tier = serializers.CharField()
    tier_name = serializers.CharField()
    balance = serializers.CharField()
    face_value = serializers.CharField()
    currency = serializers.CharField()
    valid_until = serializers.DateField()
    government_share_rate = serializers.CharField(help_text="0-1, four decimals")
    service_items = ServiceItemOfferSerializer(many=True)


class ServiceItemsSerializer(serializers.Serializer):
    service_items = ServiceItemOfferSerializer(many=True)


class RedeemRequestSerializer(ConfirmSerializer):
    token = token_field()
    service_item = serializers.SlugField(max_length=30)
    quantity = serializers.DecimalField(
        max_digits=4,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=services.MAX_QUANTITY,
        coerce_to_string=False,
        help_text="a positive multiple of the item's quantity_step",
    )
    idempotency_key = idempotency_key_field()


class RedemptionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    voucher_id = serializers.IntegerField()
    service_item = serializers.CharField(source="service_item.code")
    service_item_name = serializers.CharField(source="service_item.name")
    quantity = serializers.DecimalField(max_digits=7, decimal_places=2)
    unit_price = MoneyTextField()
    amount = MoneyTextField()
    government_share = MoneyTextField()
    senior_share = MoneyTextField()
    currency = serializers.SerializerMethodField()
    tier = serializers.CharField(source="tier_code")
    masked_name = serializers.CharField(source="voucher.senior.masked_name")
    served_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True, help_text="per-hour items: check-in")
    ended_at = serializers.DateTimeField(allow_null=True, help_text="per-hour items: check-out")
    offline = serializers.BooleanField(help_text="scanned offline and sent later")
    idempotency_key = serializers.CharField()
    voided = serializers.SerializerMethodField()

    def get_currency(self, obj) -> str:
        return "CNY"

    def get_voided(self, obj) -> bool:
        return hasattr(obj, "void")


class RedeemResponseSerializer(RedemptionSerializer):
    remaining_balance = serializers.CharField()


_DATETIME = serializers.DateTimeField()


def _time(value) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


def redemption_json(redemption) -> dict:
    """`RedemptionSerializer`'s answer, built directly: it is the body of every scan's answer,
    and DRF copies a serializer's eighteen fields each time it makes one (a test keeps the two
    equal; the serializer documents the schema)."""
    return {
        "id": redemption.pk,
        "voucher_id": redemption.voucher_id,
        "service_item": redemption.service_item.code,
        "service_item_name": redemption.service_item.name,
        "quantity": f"{redemption.quantity:.2f}",
        "unit_price": _money(redemption.unit_price),
        "amount": _money(redemption.amount),
        "government_share": _money(redemption.government_share),
        "senior_share": _money(redemption.senior_share),
        "currency": "CNY",
        "tier": redemption.tier_code,
        "masked_name": redemption.voucher.senior.masked_name,
        "served_at": _time(redemption.served_at),
        "started_at": _time(redemption.started_at),
        "ended_at": _time(redemption.ended_at),
        "offline": redemption.offline,
        "idempotency_key": redemption.idempotency_key,
        "voided": hasattr(redemption, "void"),
    }


class VoidRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(min_length=1, max_length=200)


class VoidResponseSerializer(serializers.Serializer):
    redemption_id = serializers.IntegerField()
    reason = serializers.CharField()
    voided_at = serializers.DateTimeField()
    credited_back = serializers.CharField()
    remaining_balance = serializers.CharField()


class CheckInRequestSerializer(ScanBodySerializer):
    token = token_field()
    service_item = serializers.SlugField(max_length=30)
    idempotency_key = idempotency_key_field()


class CheckOutRequestSerializer(ConfirmSerializer):
    token = token_field()
    idempotency_key = idempotency_key_field()


class CancelVisitRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(min_length=1, max_length=200)


class VisitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    voucher_id = serializers.IntegerField()
    masked_name = serializers.CharField(source="voucher.senior.masked_name")
    service_item = serializers.CharField(source="service_item.code")
    service_item_name = serializers.CharField(source="service_item.name")
    status = serializers.ChoiceField(choices=Visit.Status.choices)
    started_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField(help_text="check out before this, or the visit is an exception")
    ended_at = serializers.DateTimeField(allow_null=True)
    increment_minutes = serializers.IntegerField()
    max_minutes = serializers.IntegerField()
    offline = serializers.BooleanField()
    redemption_id = serializers.IntegerField(allow_null=True)
    idempotency_key = serializers.CharField(source="check_in_key")


class VisitListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Visit.Status.values, required=False)


def _item_offer(item) -> dict:
    service_item = item.service_item
    per_hour = service_item.unit == service_item.Unit.HOUR
    return {
        "code": service_item.code,
        "name": service_item.name,
        "name_en": service_item.name_en,
        "unit": service_item.unit,
        "unit_price": _money(item.unit_price),
        "quantity_step": f"{service_item.quantity_step.normalize():f}",
        "per_hour": per_hour,
        "increment_minutes": item.visit_increment_minutes if per_hour else None,
        "max_minutes": item.visit_max_minutes if per_hour else None,
    }


def _redemption_body(result) -> dict:
    return {**redemption_json(result.redemption), "remaining_balance": _money(result.remaining_balance)}


def _recorded(request, result, answer) -> Response:
    """The answer to a committed scan, `answer(result)`: 201, or 200 for a repeat answered from
    its record. Marked recorded first, so that a failure building it says so."""
    mark_recorded(request)
    return Response(answer(result), status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED)


def _visit_body(result) -> dict:
    return VisitSerializer(result.visit).data


def _scanned_text(request) -> str:
    try:
        data = request.data
    except Exception:  # an unparsable body: nothing was scanned
        return ""
    token = data.get("token") if isinstance(data, dict) else None
    return token[:500] if isinstance(token, str) else ""


class ScanView(APIView):
    """A view that scans a card. Its refusals, whatever raised them (a malformed body, the rate
    limit, a domain refusal), each leave a ScanAttempt with the refusal's code."""

    throttle_classes = [ScanRateThrottle]
    throttle_scope = "scan"
    action = ""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if self.action and response is not None and response.status_code < 500:
            self._record_refusal(
                response.data.get("code", "refused") if isinstance(response.data, dict) else "refused"
            )
        return response

    def _record_refusal(self, code: str) -> None:
        user = getattr(self.request, "_user", None)
        if user is None or not user.is_authenticated:
            return  # no one scanned: an unauthenticated probe leaves no row to fill the table with
        try:
            services.record_scan_attempt(
                scanned=_scanned_text(self.request),
                action=self.action,
                outcome=code,
                staff=getattr(user, "staff_member", None),
                device=_device_of(self.request),
            )
        except Exception:  # the refusal still answers; the log says the record is missing
            logger.exception("a refused scan could not be recorded")


class VerifyView(ScanView):
    action = "verify"

    @extend_schema(request=VerifyRequestSerializer, responses={200: VoucherScanSerializer, **ERRORS})
    def post(self, request):
        data = VerifyRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scanned = data.validated_data["token"]
        staff = _staff_of(request)
        scan = selectors.voucher_for_scan(
            scanned=scanned, provider=staff.provider, today=local_date(timezone.now())
        )
        services.record_scan_attempt(
            scanned=scanned,
            action=self.action,
            outcome="ok",
            staff=staff,
            device=_device_of(request),
            voucher_id=scan.voucher.pk,
        )
        voucher = scan.voucher
        return Response(
            {
                "voucher_id": voucher.pk,
                "masked_name": scan.masked_name,
                "period": f"{voucher.period:%Y-%m}",
                "tier": voucher.tier_code,
                "tier_name": voucher.tier.name,
                "balance": _money(voucher.balance),
                "face_value": _money(voucher.face_value),
                "currency": "CNY",
                "valid_until": voucher.valid_until,
                "government_share_rate": f"{voucher.government_share_rate:.4f}",
                "service_items": [_item_offer(item) for item in scan.items],
            }
        )


class ItemsView(APIView):
    """The items this device's provider may record today (for choosing while offline)."""

    @extend_schema(responses={200: ServiceItemsSerializer, **READ_ERRORS})
    def get(self, request):
        staff = _staff_of(request)
        items = selectors.provider_items(provider=staff.provider, today=local_date(timezone.now()))
        return Response({"service_items": [_item_offer(item) for item in items]})


class RedemptionsView(ScanView):
    action = "redeem"

    @extend_schema(responses={200: RedemptionSerializer(many=True), **READ_ERRORS})
    def get(self, request):
        _staff_of(request)
        device = _device_of(request)
        if device is None:
            return Response([])
        rows = selectors.recent_redemptions_for_device(device=device)
        return Response([redemption_json(row) for row in rows])

    @extend_schema(
        request=RedeemRequestSerializer,
        responses={201: RedeemResponseSerializer, 200: RedeemResponseSerializer, **ERRORS},
        summary="Redeem a voucher (idempotent per idempotency_key of the staff member)",
        description="409 confirmation_required carries a `quote` to confirm with `confirm_senior_share`.",
    )
    def post(self, request):
        data = RedeemRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.redeem(
            token=values["token"],
            service_item_code=values["service_item"],
            quantity=values["quantity"],
            idempotency_key=values["idempotency_key"],
            staff=_staff_of(request),
            device=_device_of(request),
            scanned_at=values.get("scanned_at"),
            location=data.location_value(),
            confirm_senior_share=values.get("confirm_senior_share"),
            from_scanner=True,
        )
        return _recorded(request, result, _redemption_body)


class VoidView(APIView):
    throttle_classes = [ExactScopedRateThrottle]
    throttle_scope = "void"

    @extend_schema(request=VoidRequestSerializer, responses={200: VoidResponseSerializer, **ERRORS})
    def post(self, request, redemption_id: str):
        redemption_id = int(redemption_id)
        data = VoidRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        void = services.void_redemption(
            redemption_id=redemption_id, reason=data.validated_data["reason"], user=request.user
        )
        mark_recorded(request)
        voucher = void.redemption.voucher
        return Response(
            {
                "redemption_id": redemption_id,
                "reason": void.reason,
                "voided_at": void.voided_at,
                "credited_back": _money(void.credited_back),
                "remaining_balance": _money(voucher.balance),
            }
        )


class CheckInView(ScanView):
    action = "check_in"

    @extend_schema(
        request=CheckInRequestSerializer,
        responses={201: VisitSerializer, 200: VisitSerializer, **ERRORS},
        summary="Check in at the senior's door for an item priced per hour (签到)",
    )
    def post(self, request):
        data = CheckInRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.check_in(
            token=values["token"],
            service_item_code=values["service_item"],
            idempotency_key=values["idempotency_key"],
            staff=_staff_of(request),
            device=_device_of(request),
            scanned_at=values.get("scanned_at"),
            location=data.location_value(),
        )
        return _recorded(request, result, _visit_body)


class CheckOutView(ScanView):
    action = "check_out"

    @extend_schema(
        request=CheckOutRequestSerializer,
        responses={201: RedeemResponseSerializer, 200: RedeemResponseSerializer, **ERRORS},
        summary="Check out at departure, scanning the card again: records the priced service (签退)",
    )
    def post(self, request, visit_id: str):
        data = CheckOutRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.check_out(
            visit_id=int(visit_id),
            token=values["token"],
            idempotency_key=values["idempotency_key"],
            staff=_staff_of(request),
            device=_device_of(request),
            scanned_at=values.get("scanned_at"),
            location=data.location_value(),
            confirm_senior_share=values.get("confirm_senior_share"),
            from_scanner=True,
        )
        return _recorded(request, result, _redemption_body)


class CancelVisitView(APIView):
    throttle_classes = [ExactScopedRateThrottle]
    throttle_scope = "void"

    @extend_schema(request=CancelVisitRequestSerializer, responses={200: VisitSerializer, **ERRORS})
    def post(self, request, visit_id: str):
        data = CancelVisitRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        visit = services.cancel_visit(
            visit_id=int(visit_id), reason=data.validated_data["reason"], staff=_staff_of(request)
        )
        mark_recorded(request)
        return Response(VisitSerializer(visit).data)


class VisitsView(APIView):
    @extend_schema(
        parameters=[VisitListQuerySerializer],
        responses={200: VisitSerializer(many=True), **READ_ERRORS},
        summary="This staff member's visits, newest first (?status=open: those to check out)",
    )
    def get(self, request):
        # A plain dict: a form-style QueryDict would take "?status=" for no status at all.
        query = VisitListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        visits = selectors.visits_of_staff(
            staff=_staff_of(request), status=query.validated_data.get("status")
        )
        return Response(VisitSerializer(visits, many=True).data)


class RevocationSerializer(serializers.Serializer):
    voucher_id = serializers.IntegerField()
    valid_version = serializers.IntegerField(
        help_text="codes of this voucher with a lower version are refused"
    )
    revoked = serializers.BooleanField(help_text="every code of this voucher is refused")
    at = serializers.DateTimeField()


class RevocationsSerializer(serializers.Serializer):
    revocations = RevocationSerializer(many=True)
    next_since = serializers.DateTimeField(
        allow_null=True, help_text="pass as ?since= for the next page, or next time (null: nothing new)"
    )
    complete = serializers.BooleanField(help_text="false: more follow, ask again with next_since")


def _since(text: str) -> dt.datetime:
    """?since= as an aware time in UTC (the database takes offsets up to ±15:59 only, ISO 8601
    up to ±23:59), or `invalid_input`."""
    try:
        since = parse_datetime(text)
        if since is not None:
            return (timezone.make_aware(since) if timezone.is_naive(since) else since).astimezone(dt.UTC)
    except (ValueError, OverflowError):  # well formed but no such time (month 13, year 0)
        pass
    raise VoucherError("invalid_input", _("since is a date and time in ISO 8601."), field="since")


class RevocationsView(APIView):
    """What a scanner needs to refuse lost, damaged or revoked cards while offline (DESIGN.md §5):
    the reissued and revoked vouchers whose month is not over, since `since` (ISO 8601)."""

    @extend_schema(
        parameters=[OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601; omit for all")],
        responses={200: RevocationsSerializer, **ERRORS},
    )
    def get(self, request):
        _staff_of(request)
        since = None
        if "since" in request.query_params:  # given, even empty: it must be a time
            since = _since(request.query_params["since"])
        rows = selectors.revocations_since(since=since, today=local_date(timezone.now()))
        return Response(
            {
                "revocations": [
                    {
                        "voucher_id": r.voucher_id,
                        "valid_version": r.valid_version,
                        "revoked": r.revoked,
                        "at": r.at,
                    }
                    for r in rows
                ],
                "next_since": rows[-1].at if rows else since,
                "complete": len(rows) < selectors.REVOCATIONS_PAGE,
            }
        )


class ScannerKeySerializer(serializers.Serializer):
    key_id = serializers.IntegerField(help_text="the first byte of a token: which key signed it")
    algorithm = serializers.CharField(help_text="Ed25519")
    public_key = serializers.CharField(help_text="the raw 32-byte public key, base64url without padding")
    current = serializers.BooleanField(help_text="true: new cards are signed with this key")
    valid_until = serializers.DateField(
        allow_null=True, help_text="the last day cards of this key are accepted (null: until replaced)"
    )


class ScannerKeysSerializer(serializers.Serializer):
    keys = ScannerKeySerializer(many=True)
    token_format = serializers.CharField()


CARD_CODE_LAYOUT = (
    "120 characters of RFC 4648 base32 = 75 bytes: key id (1), voucher id (6, big-endian), "
    "token version (2), month as (year-2000)*12+(month-1) (2), then the Ed25519 signature (64) of "
    "the ASCII bytes 'homecare-voucher-token-v1' followed by the first 11 bytes."
)


class KeysView(APIView):
    """The public keys that verify voucher cards offline (DESIGN.md §5): the current key and the
    previous ones still accepted after a rotation, with the last day of each."""

    @extend_schema(responses={200: ScannerKeysSerializer, **ERRORS})
    def get(self, request):
        _staff_of(request)
        keys = [
            {
                "key_id": key.key_id,
                "algorithm": tokens.ALGORITHM,
                "public_key": key.public_key_text,
                "current": key.current,
                "valid_until": key.valid_until,
            }
            for key in tokens.verification_keys(local_date(timezone.now()))
        ]
        return Response({"keys": keys, "token_format": CARD_CODE_LAYOUT})
