"""Read-only admin for settlements: a settled period is immutable (§6.3), even here."""

from django.contrib import admin

from billing.models import Adjustment, ReconciliationCheck, SettlementPeriod, Statement, StatementLine
from config.admin import ReadOnlyAdmin


@admin.register(SettlementPeriod)
class SettlementPeriodAdmin(ReadOnlyAdmin):
    list_display = ["month", "state", "settled_at", "settled_by", "settled_by_job", "locked_at"]
    list_filter = ["state"]
    list_select_related = ["settled_by"]
    date_hierarchy = "month"


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    fields = [
        "kind",
        "tier_code",
        "service_item",
        "redemption_count",
        "void_count",
        "quantity",
        "amount",
        "government_share",
        "senior_share",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("service_item")


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = [
        "period",
        "provider",
        "state",
        "due_date",
        "redemption_count",
        "total_amount",
        "government_total",
        "senior_total",
    ]
    list_filter = ["state", "period__month"]
    list_select_related = ["period", "provider"]
    search_fields = ["provider__code", "provider__name"]
    inlines = [StatementLineInline]


@admin.register(Adjustment)
class AdjustmentAdmin(ReadOnlyAdmin):
    list_display = [
        "month",
        "provider",
        "kind",
        "redemption",
        "amount",
        "government_share",
        "reason",
        "created_at",
    ]
    list_filter = ["kind", "month"]
    list_select_related = ["provider"]
    raw_id_fields = ["redemption"]


@admin.register(ReconciliationCheck)
class ReconciliationCheckAdmin(ReadOnlyAdmin):
    list_display = ["period", "code", "status", "failing_count", "checked_at"]
    list_filter = ["status", "code"]
    list_select_related = ["period"]
