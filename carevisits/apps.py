from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CareVisitsConfig(AppConfig):
    name = "carevisits"
    verbose_name = _("Care visits")

    def ready(self):
        from carevisits import panels
        from eligibility.panels import register_senior_panel

        register_senior_panel(panels.senior_care_visits_panel)  # the registry page links to the visits
