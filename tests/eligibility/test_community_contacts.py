"""Community contacts (社区联系人): the worker keeps their own community's, the bureau any;
an officer reads; the phone is normalised and the change is logged."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from config.roles import setup_roles
from eligibility.errors import EligibilityError
from eligibility.services import set_community_contact
from tests.e2e.conftest import make_user
from tests.factories import make_community


@pytest.fixture
def places(db):
    setup_roles()
    mine, other = make_community("K"), make_community("L")
    return {
        "mine": mine,
        "other": other,
        "worker": make_user("contact-worker", "worker", region=mine),
        "officer": make_user("contact-officer", "officer", region=mine.parent),
        "bureau": make_user("contact-bureau", "bureau"),
    }


def test_the_worker_sets_their_communitys_contact_and_the_card_will_print_it(client, places):
    client.force_login(places["worker"])
    url = reverse("registry-contact-edit", args=[places["mine"].pk])
    assert client.get(url).status_code == 200

    response = client.post(url, {"name": " 陈晓燕 ", "phone": "0571 8799 1001"})

    assert response.status_code == 302 and response.url == reverse("registry-contacts")
    places["mine"].refresh_from_db()
    assert (places["mine"].contact_name, places["mine"].contact_phone) == ("陈晓燕", "0571-87991001")
    entry = LogEntry.objects.get(object_id=str(places["mine"].pk))
    assert entry.user == places["worker"]
    listed = client.get(reverse("registry-contacts")).content.decode()
    assert "0571-87991001" in listed


def test_a_bad_phone_is_refused_on_the_form_and_nothing_changes(client, places):
    client.force_login(places["worker"])
    response = client.post(
        reverse("registry-contact-edit", args=[places["mine"].pk]), {"name": "陈", "phone": "12345"}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["phone"]
    places["mine"].refresh_from_db()
    assert places["mine"].contact_phone == ""


def test_outside_their_scope_a_community_is_not_found_and_an_officer_only_reads(client, places):
    client.force_login(places["worker"])
    assert client.get(reverse("registry-contact-edit", args=[places["other"].pk])).status_code == 404
    client.force_login(places["officer"])
    assert client.get(reverse("registry-contacts")).status_code == 200
    assert (
        client.post(reverse("registry-contact-edit", args=[places["mine"].pk]), {"phone": ""}).status_code
        == 403
    )
    with pytest.raises(EligibilityError) as refused:
        set_community_contact(community=places["mine"], name="x", phone="", by=places["officer"])
    assert refused.value.code == "not_permitted"
    client.force_login(places["bureau"])
    assert client.get(reverse("registry-contact-edit", args=[places["other"].pk])).status_code == 200
