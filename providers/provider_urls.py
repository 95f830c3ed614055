"""The providers' pages under /providers/: the bureau's (providers, contracts) and a provider
manager's (their staff, devices and redemptions)."""

from django.urls import include, path

urlpatterns = [
    path("", include("providers.bureau_urls")),
    path("", include("providers.manager_urls")),
]
