from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VouchersConfig(AppConfig):
    name = "vouchers"
    verbose_name = _("Vouchers")

    def ready(self):
        from eligibility.panels import register_senior_panel
        from eligibility.signals import senior_left
        from vouchers import panels, services

        # A senior who moved out or died stops receiving money at once (same transaction).
        senior_left.connect(services.revoke_vouchers_on_leaving, dispatch_uid="vouchers-revoke-on-leaving")
        register_senior_panel(panels.senior_vouchers_panel)  # the registry page shows vouchers
