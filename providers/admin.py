"""Admin for providers, the service catalogue, contracts, staff and their devices."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError as StdnumValidationError

from config.admin import ModelAdmin, PostedSearchMixin, ReadOnlyAdmin
from providers.models import (
    Contract,
    ContractItem,
    Device,
    Provider,
    ProviderStatusChange,
    ServiceItem,
    StaffMember,
)
from providers.selectors import visible_to
from providers.services import revoke_device


class ProviderForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = ["code", "name", "name_en", "credit_code", "contact_phone"]

    def clean_credit_code(self):
        try:
            return uscc.validate(self.cleaned_data["credit_code"])
        except StdnumValidationError:
            raise forms.ValidationError(
                _("The unified social credit code is not valid."), code="invalid_credit_code"
            ) from None


class SuperuserWritesAdmin(ModelAdmin):
    """The bureau changes these on /providers/ (through the services, with their checks and
    audit); here only a superuser repairs them."""

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Provider)
class ProviderAdmin(SuperuserWritesAdmin):
    form = ProviderForm
    list_display = ["code", "name", "credit_code", "contact_phone", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["code", "name", "name_en", "=credit_code"]
    readonly_fields = ["is_active"]  # suspended and reinstated on the provider's page, with a reason

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=visible_to(request.user).values("pk"))


@admin.register(ServiceItem)
class ServiceItemAdmin(SuperuserWritesAdmin):
    list_display = ["code", "name", "name_en", "unit", "quantity_step", "category", "is_active"]
    list_filter = ["category", "unit", "is_active"]
    search_fields = ["code", "name", "name_en"]


class ContractItemInline(admin.TabularInline):
    model = ContractItem
    extra = 0
    autocomplete_fields = ["service_item"]


@admin.register(ProviderStatusChange)
class ProviderStatusChangeAdmin(ReadOnlyAdmin):
    list_display = ["provider", "is_active", "reason", "changed_by", "changed_at"]
    list_filter = ["is_active"]
    search_fields = ["provider__name", "provider__code", "reason"]
    list_select_related = ["provider", "changed_by"]


@admin.register(Contract)
class ContractAdmin(SuperuserWritesAdmin):
    list_display = ["number", "provider", "starts_on", "ends_on", "status"]
    list_filter = ["status", "provider"]
    search_fields = ["number", "provider__name", "provider__code"]
    list_select_related = ["provider"]
    filter_horizontal = ["service_area"]
    inlines = [ContractItemInline]


@admin.register(StaffMember)
class StaffMemberAdmin(ModelAdmin):
    list_display = ["display_name", "employee_number", "provider", "user", "is_active"]
    list_filter = ["is_active", "provider"]
    search_fields = ["display_name", "employee_number", "user__username"]
    list_select_related = ["provider", "user"]
    autocomplete_fields = ["user"]


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    """Devices are created by signing in on the phone; here they are seen and revoked, no more."""

    list_display = ["staff", "name", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["staff__provider"]
    search_fields = ["=token_prefix", "staff__display_name", "staff__user__username"]
    list_select_related = ["staff"]
    # The token hash stays out of sight: the prefix is enough to recognise a device.
    fields = ["staff", "name", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("providers.change_device")

    @admin.action(
        description=_("Revoke the selected devices (they must sign in again)"), permissions=["revoke"]
    )
    def revoke(self, request, queryset):
        for device in queryset:
            revoke_device(device=device)
        self.message_user(
            request, _("%(count)s devices revoked.") % {"count": len(queryset)}, messages.SUCCESS
        )


# Django's user admin, with the project's POSTed search (config.admin.PostedSearchMixin).
admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class AccountAdmin(PostedSearchMixin, UserAdmin):
    pass
