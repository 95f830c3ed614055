from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self):
        from billing.services import adjust_late_void
        from vouchers.services import register_late_void_handler

        # A void after its month was settled becomes an adjustment in an open month (§6.3).
        register_late_void_handler(adjust_late_void)
