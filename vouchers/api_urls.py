"""URLs of the versioned API, /api/v1/ (DESIGN.md §5).

The trailing slash is optional: APPEND_SLASH would answer a POST without it with an HTML
redirect that clients follow as a GET, losing the scan. Anything unknown answers JSON 404, in
DEBUG too.
"""

from django.urls import re_path

from config.api import json_not_found
from providers.api import AuthTokenView
from vouchers.api import (
    CancelVisitView,
    CheckInView,
    CheckOutView,
    ItemsView,
    KeysView,
    RedemptionsView,
    RevocationsView,
    VerifyView,
    VisitsView,
    VoidView,
)

urlpatterns = [
    re_path(r"^auth/token/?$", AuthTokenView.as_view(), name="api-auth-token"),
    re_path(r"^vouchers/verify/?$", VerifyView.as_view(), name="api-voucher-verify"),
    re_path(r"^redemptions/?$", RedemptionsView.as_view(), name="api-redemptions"),
    re_path(
        r"^redemptions/(?P<redemption_id>[0-9]{1,18})/void/?$", VoidView.as_view(), name="api-redemption-void"
    ),
    re_path(r"^scanner/keys/?$", KeysView.as_view(), name="api-scanner-keys"),
    re_path(r"^scanner/revocations/?$", RevocationsView.as_view(), name="api-scanner-revocations"),
    re_path(r"^scanner/items/?$", ItemsView.as_view(), name="api-scanner-items"),
    re_path(r"^visits/?$", VisitsView.as_view(), name="api-visits"),
    re_path(r"^visits/check-in/?$", CheckInView.as_view(), name="api-visit-check-in"),
    re_path(
        r"^visits/(?P<visit_id>[0-9]{1,18})/check-out/?$", CheckOutView.as_view(), name="api-visit-check-out"
    ),
    re_path(
        r"^visits/(?P<visit_id>[0-9]{1,18})/cancel/?$", CancelVisitView.as_view(), name="api-visit-cancel"
    ),
    re_path(r"^", json_not_found),
]
