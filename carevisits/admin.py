"""Admin for the care visits: a superuser's repairs, read-only (writes go through the services,
which check scope and keep the history); every list goes through `selectors.visible_to`."""

from django.contrib import admin

from carevisits import selectors
from carevisits.models import Pairing, VisitRecord, VisitRequirement, Volunteer
from config.admin import ReadOnlyAdmin


@admin.register(VisitRequirement)
class VisitRequirementAdmin(ReadOnlyAdmin):
    list_display = [
        "care_visit_class", "temporary", "label", "visits_per_month", "home_interval_months",
        "region", "effective_from", "effective_until",
    ]  # fmt: skip
    list_filter = ["care_visit_class", "temporary"]
    list_select_related = ["region"]


@admin.register(Volunteer)
class VolunteerAdmin(ReadOnlyAdmin):
    list_display = ["name", "phone", "community", "created_at"]
    list_select_related = ["community"]
    search_fields = ["name"]

    def get_queryset(self, request):
        communities = selectors.regions_for_picture(request.user)
        return super().get_queryset(request).filter(community__in=communities)


@admin.register(Pairing)
class PairingAdmin(ReadOnlyAdmin):
    list_display = ["senior", "visitor", "volunteer", "starts_on", "assigned_by", "ended_at"]
    list_select_related = ["senior", "visitor", "volunteer", "assigned_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(senior__in=selectors.visible_to(request.user))


@admin.register(VisitRecord)
class VisitRecordAdmin(ReadOnlyAdmin):
    list_display = ["senior", "visited_at", "mode", "outcome", "urgent", "recorded_by"]
    list_filter = ["mode", "outcome", "urgent"]
    list_select_related = ["senior", "recorded_by"]
    date_hierarchy = "visited_on"

    def get_queryset(self, request):
        return selectors.visits_visible_to(request.user)
