"""What the apps' admin modules share."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by whoever has the view permission; never added, changed or deleted here.

    For facts written only by services (the ledger, determinations, settlements, devices).
    """

    show_full_result_count = False  # these tables hold millions of rows

    def get_readonly_fields(self, request, obj=None):
        return self.fields or [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
