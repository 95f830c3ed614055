"""Read-only admin for settlements: a settled period is immutable (§6.3), even here."""

from django.contrib import admin

from billing.models import SettlementPeriod, Statement, StatementLine
from config.admin import ReadOnlyAdmin


@admin.register(SettlementPeriod)
class SettlementPeriodAdmin(ReadOnlyAdmin):
    list_display = ["month", "state", "settled_at", "settled_by"]
    list_filter = ["state"]
    list_select_related = ["settled_by"]
    date_hierarchy = "month"


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    fields = [
        "tier_code",
        "service_item",
        "redemption_count",
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
        "redemption_count",
        "total_amount",
        "government_total",
        "senior_total",
    ]
    list_filter = ["period__month"]
    list_select_related = ["period", "provider"]
    search_fields = ["provider__code", "provider__name"]
    inlines = [StatementLineInline]
