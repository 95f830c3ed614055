from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import second_factor_views, views
from config.api import json_not_found

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("otp/", second_factor_views.verify, name="otp-verify"),
    path("otp/setup/", second_factor_views.setup, name="otp-setup"),
    path("otp/recovery-codes/", second_factor_views.recovery_codes, name="otp-recovery-codes"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/care-visits/", include("carevisits.api_urls")),
    path("api/v1/", include("vouchers.api_urls")),
    re_path(r"^api/", json_not_found),  # unknown API paths answer JSON, in DEBUG too
    path("registry/", include("eligibility.urls")),
    path("policies/", include("eligibility.policy_urls")),
    path("accounts/", include("providers.urls")),
    path("providers/", include("providers.provider_urls")),
    path("visits/", include("carevisits.urls")),
    path("", include("vouchers.urls")),
    path("", include("billing.urls")),
]

admin.site.site_header = _("Home-care vouchers: administration")
admin.site.site_title = _("Home-care vouchers")
admin.site.index_title = _("Administration")

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
