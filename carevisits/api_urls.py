"""URLs of the care-visit API, /api/v1/care-visits/ (the trailing slash optional, as in vouchers)."""

from django.urls import re_path

from carevisits.api import CareVisitsView, MyVisitsView
from config.api import json_not_found

urlpatterns = [
    re_path(r"^$", CareVisitsView.as_view(), name="api-care-visits"),
    re_path(r"^mine/?$", MyVisitsView.as_view(), name="api-care-visits-mine"),
    re_path(r"^", json_not_found),
]
