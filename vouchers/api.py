"""The scanner's API: verify a voucher, redeem it, list and void redemptions.

Thin: parse the body, call a selector or service, render. Every refusal is a DomainError that
`config.api.exception_handler` turns into `{"code", "detail"}`; refused scans are recorded.
"""

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.errors import DomainError
from config.months import local_date
from providers.api import ErrorSerializer
from providers.models import Device
from vouchers import selectors, services, tokens
from vouchers.errors import VoucherError

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 429)}


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


class VerifyRequestSerializer(serializers.Serializer):
    token = serializers.CharField(
        max_length=500, help_text="The bare token, or the /v/<token> URL the QR encodes"
    )


class ServiceItemOfferSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    name_en = serializers.CharField()
    unit = serializers.CharField()
    unit_price = serializers.CharField()
    quantity_step = serializers.CharField(
        help_text="the smallest billable increment: a quantity must be a positive multiple of it"
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
    service_items = ServiceItemOfferSerializer(many=True)


class RedeemRequestSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=500)
    service_item = serializers.CharField(max_length=30)
    quantity = serializers.DecimalField(max_digits=7, decimal_places=2, coerce_to_string=False)
    idempotency_key = serializers.CharField(max_length=64)


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
    idempotency_key = serializers.CharField()
    voided = serializers.SerializerMethodField()

    def get_currency(self, obj) -> str:
        return "CNY"

    def get_voided(self, obj) -> bool:
        return hasattr(obj, "void")


class RedeemResponseSerializer(RedemptionSerializer):
    remaining_balance = serializers.CharField()


class VoidRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class VoidResponseSerializer(serializers.Serializer):
    redemption_id = serializers.IntegerField()
    reason = serializers.CharField()
    voided_at = serializers.DateTimeField()
    credited_back = serializers.CharField()
    remaining_balance = serializers.CharField()


class ScanView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "scan"
    action = ""

    def record_scan(self, request, scanned: str, outcome: str) -> None:
        """Every scan leaves a row, accepted or refused (DESIGN.md §4.5: proof of service)."""
        services.record_scan_attempt(
            scanned=scanned,
            action=self.action,
            outcome=outcome,
            staff=getattr(request.user, "staff_member", None),
            device=_device_of(request),
        )


class VerifyView(ScanView):
    action = "verify"

    @extend_schema(request=VerifyRequestSerializer, responses={200: VoucherScanSerializer, **ERRORS})
    def post(self, request):
        data = VerifyRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scanned = data.validated_data["token"]
        try:
            staff = _staff_of(request)
            scan = selectors.voucher_for_scan(
                scanned=scanned, provider=staff.provider, today=local_date(timezone.now())
            )
        except DomainError as error:
            self.record_scan(request, scanned, error.code)
            raise
        self.record_scan(request, scanned, "ok")
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
                "service_items": [
                    {
                        "code": item.service_item.code,
                        "name": item.service_item.name,
                        "name_en": item.service_item.name_en,
                        "unit": item.service_item.unit,
                        "unit_price": _money(item.unit_price),
                        "quantity_step": f"{item.service_item.quantity_step.normalize():f}",
                    }
                    for item in scan.items
                ],
            }
        )


class RedemptionsView(ScanView):
    action = "redeem"

    @extend_schema(responses={200: RedemptionSerializer(many=True), 401: ErrorSerializer})
    def get(self, request):
        device = _device_of(request)
        if device is None:
            return Response([])
        rows = selectors.recent_redemptions_for_device(device=device)
        return Response(RedemptionSerializer(rows, many=True).data)

    @extend_schema(
        request=RedeemRequestSerializer,
        responses={201: RedeemResponseSerializer, 200: RedeemResponseSerializer, **ERRORS},
        summary="Redeem a voucher (idempotent per idempotency_key)",
    )
    def post(self, request):
        data = RedeemRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scanned = data.validated_data["token"]
        try:
            result = services.redeem(
                token=scanned,
                service_item_code=data.validated_data["service_item"],
                quantity=data.validated_data["quantity"],
                idempotency_key=data.validated_data["idempotency_key"],
                staff=_staff_of(request),
                device=_device_of(request),
            )
        except DomainError as error:
            self.record_scan(request, scanned, error.code)
            raise
        self.record_scan(request, scanned, "replayed" if result.replayed else "ok")
        body = RedemptionSerializer(result.redemption).data
        body["remaining_balance"] = _money(result.remaining_balance)
        return Response(body, status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED)


class VoidView(APIView):
    @extend_schema(request=VoidRequestSerializer, responses={200: VoidResponseSerializer, **ERRORS})
    def post(self, request, redemption_id: str):
        redemption_id = int(redemption_id)
        data = VoidRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        void = services.void_redemption(
            redemption_id=redemption_id, reason=data.validated_data["reason"], user=request.user
        )
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
        if request.query_params.get("since"):
            since = parse_datetime(request.query_params["since"])
            if since is None:
                raise VoucherError("invalid_input", _("since is a date and time in ISO 8601."), field="since")
            if timezone.is_naive(since):
                since = timezone.make_aware(since)
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
