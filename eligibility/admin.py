"""Admin for the registry and policies. ID-card numbers are never listed, only masked."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.admin import ModelAdmin, ReadOnlyAdmin
from eligibility import selectors
from eligibility.errors import EligibilityError
from eligibility.models import (
    Determination,
    EvaluationRun,
    ImportJob,
    Policy,
    PolicyRule,
    Region,
    RegionScope,
    Senior,
    Tier,
    TierOverride,
)
from eligibility.selectors import communities_visible_to, visible_to
from eligibility.services import (
    CONTACT_FIELDS,
    EDITABLE_FIELDS,
    FACT_FIELDS,
    assign_region_scope,
    evaluate_eligibility,
    normalise_id_card_number,
    register_senior,
    update_senior,
)


@admin.register(Region)
class RegionAdmin(ModelAdmin):
    list_display = ["code", "name", "name_en", "level", "parent", "contact_name", "contact_phone"]
    list_filter = ["level"]
    search_fields = ["code", "name", "name_en"]
    list_select_related = ["parent"]
    autocomplete_fields = ["parent"]

    def get_readonly_fields(self, request, obj=None):
        # The materialised path of every descendant derives from code and parent: fixed once saved.
        return ["code", "level", "parent"] if obj else []

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if request.GET.get("model_name") == "senior" and request.GET.get("field_name") == "community":
            queryset = queryset.filter(level=Region.Level.COMMUNITY)  # seniors live in communities
        return queryset, may_have_duplicates


def _describe_rules(determination) -> str:
    labels = selectors.rule_labels(policy=determination.policy, codes=determination.matched_rules)
    return "; ".join(labels[code] for code in determination.matched_rules) or "—"


class SeniorForm(forms.ModelForm):
    """A superuser's repair form. Birth date and sex derive from the ID-card number (the service
    does it); once registered, the number is never edited (a wrong number is a new registration)."""

    class Meta:
        model = Senior
        fields = ["id_card_number", "name", "community", *CONTACT_FIELDS, *sorted(FACT_FIELDS)]

    def clean_id_card_number(self):
        try:
            return normalise_id_card_number(self.cleaned_data["id_card_number"])
        except EligibilityError as error:
            raise forms.ValidationError(error.detail, code=error.code) from None


@admin.register(Senior)
class SeniorAdmin(ModelAdmin):
    """For a superuser's repairs; the daily registry is /registry/. Every write goes through
    `register_senior` / `update_senior` (so the history records it), every list through
    `visible_to`. Searches by ID-card number or phone belong to the registry's POSTed search:
    an admin search is a GET, and its query would reach the access logs."""

    form = SeniorForm
    preserve_filters = False
    list_display = ["name", "masked_id_card_number", "sex", "birth_date", "community", "status"]
    list_filter = ["status", "self_care", "living_arrangement", "special_difficulty"]
    search_fields = ["^name"]
    list_select_related = ["community"]
    autocomplete_fields = ["community"]
    show_full_result_count = False
    actions = ["reevaluate"]
    change_readonly = [
        "masked_id_card_number",
        "birth_date",
        "sex",
        "status",
        "status_date",
        "current_determination",
        "created_by",
        "created_at",
        "updated_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=visible_to(request.user).values("pk"))

    @admin.display(description=_("ID-card number"))
    def masked_id_card_number(self, obj):
        return obj.masked_id_card_number

    @admin.display(description=_("current determination"))
    def current_determination(self, obj):
        determination = obj.determinations.select_related("tier").filter(is_current=True).first()
        if determination is None:
            return "—"
        tier = determination.tier.name if determination.tier else "—"
        return f"{tier} {determination.care_visit_class} ({determination.as_of}): {_describe_rules(determination)}"

    def get_exclude(self, request, obj=None):
        return ["id_card_number"] if obj else []

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None:
            return fields
        return [*self.change_readonly, *(name for name in fields if name not in self.change_readonly)]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "community":
            kwargs["queryset"] = communities_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in form.cleaned_data if name in EDITABLE_FIELDS}
        if change:
            update_senior(senior=obj, by=request.user, reason="admin", **values)
            return
        senior = register_senior(
            id_card_number=form.cleaned_data["id_card_number"], created_by=request.user, **values
        )
        # The admin goes on with `obj` (its log entry, the redirect): make it the saved row.
        obj.pk, obj.birth_date, obj.sex, obj.status_date = (
            senior.pk,
            senior.birth_date,
            senior.sex,
            senior.status_date,
        )
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False  # one record per person: a senior moves out or dies, the record stays

    @admin.action(
        description=_("Re-evaluate eligibility of the selected seniors now"), permissions=["change"]
    )
    def reevaluate(self, request, queryset):
        result = evaluate_eligibility(
            as_of=timezone.localdate(),
            determined_by=request.user,
            senior_ids=list(queryset.values_list("pk", flat=True)),
        )
        self.message_user(
            request,
            _("%(evaluated)s evaluated, %(changed)s changed.")
            % {"evaluated": result.evaluated, "changed": result.changed},
            messages.SUCCESS,
        )


@admin.register(RegionScope)
class RegionScopeAdmin(ModelAdmin):
    list_display = ["user", "region", "assigned_by", "assigned_at"]
    search_fields = ["user__username", "region__name", "region__code"]
    list_select_related = ["user", "region", "assigned_by"]
    autocomplete_fields = ["user", "region"]
    readonly_fields = ["assigned_by", "assigned_at"]

    def save_model(self, request, obj, form, change):
        try:
            assign_region_scope(user=obj.user, region=obj.region, by=request.user)
        except EligibilityError as error:
            self.message_user(request, error.detail, messages.ERROR)


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ["filename", "created_by", "created_at", "state", "dry_run", "total_rows", "finished_at"]
    list_filter = ["state", "dry_run"]
    fields = ["filename", "created_by", "created_at", "state", "dry_run", "total_rows", "finished_at"]


class _DraftOnlyInline(admin.TabularInline):
    """A published policy's tiers and rules are fixed (the database refuses edits): read-only."""

    extra = 0

    def has_change_permission(self, request, obj=None):
        return (obj is None or obj.is_draft) and super().has_change_permission(request, obj)

    has_add_permission = has_delete_permission = has_change_permission


class TierInline(_DraftOnlyInline):
    model = Tier


class PolicyRuleInline(_DraftOnlyInline):
    model = PolicyRule
    fields = ["code", "label", "label_en", "tier", "care_visit_class", "condition"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        policy_id = request.resolver_match.kwargs.get("object_id")
        if db_field.name == "tier" and policy_id:
            kwargs["queryset"] = Tier.objects.filter(policy_id=policy_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Policy)
class PolicyAdmin(ModelAdmin):
    """For a superuser's repairs of a draft; the bureau's daily tool is /policies/. A published
    version is shown read-only: the database refuses any change of it."""

    list_display = ["name", "code", "version", "status", "effective_from", "effective_until"]
    list_filter = ["status"]
    search_fields = ["code", "name"]
    readonly_fields = [
        "status",
        "effective_from",
        "effective_until",
        "created_by",
        "created_at",
        "activated_by",
        "activated_at",
    ]
    inlines = [TierInline, PolicyRuleInline]

    def has_change_permission(self, request, obj=None):
        return (obj is None or obj.is_draft) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return (obj is None or obj.is_draft) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(TierOverride)
class TierOverrideAdmin(ReadOnlyAdmin):
    list_display = ["senior", "tier_code", "starts_on", "expires_on", "created_by", "ended_at"]
    list_select_related = ["senior", "created_by"]
    fields = [
        "senior", "tier_code", "reason", "starts_on", "expires_on", "created_by", "created_at",
        "ended_at", "ended_by", "end_reason",
    ]  # fmt: skip


@admin.register(EvaluationRun)
class EvaluationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "as_of",
        "policy",
        "state",
        "started_by",
        "job",
        "evaluated",
        "changed",
        "retired",
        "created_at",
    ]
    list_filter = ["state"]
    fields = [*list_display, "error", "finished_at"]


@admin.register(Determination)
class DeterminationAdmin(ReadOnlyAdmin):
    """Determinations are written by evaluation only; here they are read."""

    list_display = ["senior", "tier", "care_visit_class", "as_of", "is_current", "determined_at"]
    list_filter = ["is_current", "care_visit_class", "tier", "as_of"]
    search_fields = ["^senior__name"]
    list_select_related = ["senior", "tier"]
    show_full_result_count = False
    fields = ["senior", "policy", "tier", "care_visit_class", "rules_matched", "as_of", "is_current"]
    readonly_fields = fields

    @admin.display(description=_("matched rules"))
    def rules_matched(self, obj):
        return _describe_rules(obj)
