from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """The demo city (`manage.py demo`): it uses every app, and nothing uses it."""

    name = "demo"
    verbose_name = _("Demo city")
