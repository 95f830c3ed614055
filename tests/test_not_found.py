"""A record outside one's reach is the friendly "not found" page, in DEBUG too (make run)."""

from django.test import override_settings
from django.urls import reverse

from tests.e2e.conftest import make_user


@override_settings(DEBUG=True)
def test_a_refused_record_shows_the_friendly_page_even_in_debug(client, db):
    client.force_login(make_user("chen", "worker"))
    response = client.get(reverse("registry-senior", args=[999999]))
    assert response.status_code == 404
    page = response.content.decode()
    assert 'href="/"' in page and "URLconf" not in page  # the site's page, not Django's debug one


def test_an_unknown_api_record_is_still_json(client, db):
    response = client.get("/api/v1/redemptions/999999/void/")
    assert response["Content-Type"].startswith("application/json")
