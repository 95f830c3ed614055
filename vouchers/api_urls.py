"""URLs of the versioned API, /api/v1/ (DESIGN.md §5)."""

from django.urls import path

from providers.api import AuthTokenView
from vouchers.api import RedemptionsView, VerifyView, VoidView

urlpatterns = [
    path("auth/token/", AuthTokenView.as_view(), name="api-auth-token"),
    path("vouchers/verify/", VerifyView.as_view(), name="api-voucher-verify"),
    path("redemptions/", RedemptionsView.as_view(), name="api-redemptions"),
    path("redemptions/<int:redemption_id>/void/", VoidView.as_view(), name="api-redemption-void"),
]
