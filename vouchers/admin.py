"""Admin for vouchers and the redemption ledger: read-only, because the ledger is immutable.

Redemptions, voids and scan attempts are written by the services only (`redeem`,
`void_redemption`); here nobody may add, change or delete them, superusers included.
"""

from django.contrib import admin
from django.db.models import Max, Min
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdmin
from config.months import format_month, next_month, parse_month
from eligibility.models import Tier
from vouchers.models import (
    Dispute,
    IssuanceRun,
    Redemption,
    RedemptionVoid,
    ScanAttempt,
    Visit,
    Voucher,
    VoucherReissue,
)
from vouchers.selectors import disputes_visible_to, redemptions_visible_to, visible_to, visits_visible_to
from vouchers.tokens import voucher_token

MONTHS_LISTED = 24
# Outcomes of a scan: "ok" or a refusal code of DESIGN.md §5.
SCAN_OUTCOMES = [
    "ok",
    "invalid_token",
    "voucher_expired",
    "voucher_revoked",
    "voucher_not_yet_valid",
    "not_contracted",
    "outside_service_area",
    "not_permitted",
    "period_closed",
    "invalid_input",
    "rate_limited",
    "replayed",
    "confirmation_required",
    "insufficient_balance",
    "offline_too_late",
    "use_check_in",
    "not_per_hour",
    "visit_open",
    "visit_closed",
    "visit_too_short",
    "visit_overdue",
    "idempotency_conflict",
    "not_authenticated",
    "not_found",
]


class MonthFilter(admin.SimpleListFilter):
    """The most recent months present, from MIN/MAX (index-only) rather than a DISTINCT scan."""

    parameter_name = "month"
    title = _("month")
    field = "period"

    def lookups(self, request, model_admin):
        bounds = model_admin.model.objects.aggregate(first=Min(self.field), last=Max(self.field))
        months, month = [], bounds["first"]
        while month is not None and month <= bounds["last"]:
            months.append(month)
            month = next_month(month)
        return [(format_month(m), format_month(m)) for m in reversed(months[-MONTHS_LISTED:])]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field: parse_month(self.value())})
        return queryset


class ServiceMonthFilter(MonthFilter):
    field = "service_month"


class TierCodeFilter(admin.SimpleListFilter):
    """Tier codes from the policies, not a DISTINCT over the ledger."""

    parameter_name = "tier"
    title = _("tier")

    def lookups(self, request, model_admin):
        return sorted(dict(Tier.objects.values_list("code", "name")).items())

    def queryset(self, request, queryset):
        return queryset.filter(tier_code=self.value()) if self.value() else queryset


def known_values_filter(field: str, title, values) -> type[admin.SimpleListFilter]:
    """A filter over values known in advance, not a DISTINCT over a large table."""

    class KnownValuesFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            return [(value, value) for value in values]

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    KnownValuesFilter.title = title
    return KnownValuesFilter


class VoidedFilter(admin.SimpleListFilter):
    parameter_name = "voided"
    title = _("voided")

    def lookups(self, request, model_admin):
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(void__isnull=self.value() == "no")
        return queryset


@admin.register(Voucher)
class VoucherAdmin(ReadOnlyAdmin):
    preserve_filters = False  # a searched ID-card number would ride along in every link
    list_display = ["id", "senior", "period", "tier_code", "face_value", "balance", "status", "valid_until"]
    list_filter = [MonthFilter, "status", TierCodeFilter]
    search_fields = ["^senior__name", "=id"]
    list_select_related = ["senior"]
    fields = [
        "senior",
        "period",
        "tier",
        "tier_code",
        "government_share_rate",
        "face_value",
        "balance",
        "valid_from",
        "valid_until",
        "status",
        "token_version",
        "issued_at",
        "senior_page",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=visible_to(request.user).values("pk"))

    @admin.display(description=_("senior's page"))
    def senior_page(self, obj):
        url = reverse("senior-voucher", kwargs={"token": voucher_token(obj)})
        return format_html('<a href="{}">{}</a>', url, _("Open the page the QR code shows"))


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin):
    preserve_filters = False  # a searched ID-card number would ride along in every link
    list_display = [
        "id",
        "served_at",
        "provider",
        "service_item",
        "senior",
        "quantity",
        "amount",
        "government_share",
        "senior_share",
        "tier_code",
        "voided",
    ]
    list_filter = [ServiceMonthFilter, "provider", TierCodeFilter, VoidedFilter]
    search_fields = ["=id", "=idempotency_key"]
    list_select_related = ["voucher__senior", "provider", "service_item", "void"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=redemptions_visible_to(request.user).values("pk"))

    @admin.display(description=_("senior"))
    def senior(self, obj):
        return obj.voucher.senior  # shown by its masked name

    @admin.display(description=_("voided"), boolean=True)
    def voided(self, obj):
        return hasattr(obj, "void")


@admin.register(RedemptionVoid)
class RedemptionVoidAdmin(ReadOnlyAdmin):
    list_display = ["redemption", "reason", "voided_by", "voided_at", "credited_back"]
    search_fields = ["=redemption__id"]
    list_select_related = ["redemption", "voided_by"]


@admin.register(ScanAttempt)
class ScanAttemptAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "outcome", "staff", "device", "voucher"]
    list_filter = [
        known_values_filter("outcome", _("outcome"), SCAN_OUTCOMES),
        known_values_filter("action", _("action"), ["verify", "redeem", "check_in", "check_out"]),
    ]
    search_fields = ["=scanned_hash"]
    list_select_related = ["staff", "device__staff", "voucher__senior"]


@admin.register(VoucherReissue)
class VoucherReissueAdmin(ReadOnlyAdmin):
    """New QR codes for lost or damaged cards: written by `services.reissue_voucher` only."""

    list_display = ["voucher", "old_version", "new_version", "reason", "reissued_by", "reissued_at"]
    list_select_related = ["voucher", "reissued_by"]
    fields = list_display

    def get_queryset(self, request):
        return super().get_queryset(request).filter(voucher__in=visible_to(request.user))


@admin.register(IssuanceRun)
class IssuanceRunAdmin(ReadOnlyAdmin):
    """Each run of a month's issuance: written by `services.issue_vouchers` only."""

    list_display = [
        "period",
        "started_at",
        "issued",
        "expired",
        "carried_over",
        "incremental",
        "run_by",
        "job",
    ]
    list_select_related = ["run_by"]
    fields = [*list_display, "finished_at", "last_determination_id"]


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """Seniors' "this service did not happen", for the bureau to read (written only by
    `services.file_dispute`; the bureau's own page to check and close them comes later)."""

    preserve_filters = False
    list_display = ["id", "created_at", "status", "service", "provider", "senior", "served_at", "note"]
    list_filter = [known_values_filter("status", _("status"), ["open", "closed"])]
    search_fields = ["=id", "=redemption__id"]
    list_select_related = ["redemption__service_item", "redemption__provider", "redemption__voucher__senior"]
    fields = [
        "redemption",
        "service",
        "provider",
        "senior",
        "served_at",
        "status",
        "created_at",
        "note",
        "callback_phone",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=disputes_visible_to(request.user).values("pk"))

    @admin.display(description=_("service"))
    def service(self, obj):
        return obj.redemption.service_item

    @admin.display(description=_("provider"))
    def provider(self, obj):
        return obj.redemption.provider

    @admin.display(description=_("senior"))
    def senior(self, obj):
        return obj.redemption.voucher.senior  # shown by its masked name

    @admin.display(description=_("served at"))
    def served_at(self, obj):
        return obj.redemption.served_at


@admin.register(Visit)
class VisitAdmin(ReadOnlyAdmin):
    """Check-ins and check-outs (签到签退); "not checked out in time" are the exceptions to review."""

    list_display = [
        "id",
        "started_at",
        "ended_at",
        "status",
        "provider",
        "staff",
        "service_item",
        "senior",
        "offline",
    ]
    list_filter = ["status", "provider", "offline"]
    search_fields = ["=id", "=redemption__id"]
    list_select_related = ["voucher__senior", "provider", "staff", "service_item"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=visits_visible_to(request.user).values("pk"))

    @admin.display(description=_("senior"))
    def senior(self, obj):
        return obj.voucher.senior  # shown by its masked name
