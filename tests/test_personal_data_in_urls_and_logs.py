"""Nothing personal in a URL or a log line (DESIGN.md §6.6, §8): the admin's search is POSTed and
its links leave it out; pages and the API driven with real-looking ID-card numbers and phones
leave neither in any log line; the access-log format of the README logs no query string."""

import io
import logging
import re
from pathlib import Path

import pytest
from django.test import Client

from config.logging import RedactIdCardNumbers, RedactingFormatter
from eligibility.services import ensure_default_policy, register_senior
from tests.factories import UserFactory, make_community, make_id_card_number

ID_NUMBER = make_id_card_number(serial=321)
PHONE = "13987654321"
SENIORS = "/admin/eligibility/senior/"


@pytest.fixture
def superuser_client(db):
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    return client


@pytest.fixture
def senior(db):
    ensure_default_policy()
    return register_senior(
        id_card_number=ID_NUMBER, name="张三丰", community=make_community("P"), phone=PHONE
    )


@pytest.fixture
def log_lines():
    """Every log line of the run as the configured console handler writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactIdCardNumbers())
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def hrefs(html: str) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', html)


def test_the_admin_search_is_posted_and_its_links_leave_it_out(superuser_client, senior):
    # when the superuser searches the seniors
    posted = superuser_client.post(SENIORS, {"q": "张三丰", "_search": "Search"})

    # then the answer is a redirect to an address without the search, whose page finds the senior
    assert posted.status_code == 302 and "q=" not in posted["Location"]
    page = superuser_client.get(posted["Location"]).content.decode()
    assert "张三丰" in page
    assert 'method="post"' in page.split('id="changelist-search"')[1][:120]
    assert not [link for link in hrefs(page) if "q=" in link or "%E5%BC%A0" in link]


def test_a_number_typed_into_the_admins_address_is_dropped_from_it(superuser_client, senior):
    response = superuser_client.get(f"{SENIORS}?q={ID_NUMBER}&status__exact=active")

    assert response.status_code == 302
    assert ID_NUMBER not in response["Location"] and "status__exact=active" in response["Location"]
    page = superuser_client.get(response["Location"]).content.decode()
    assert not [link for link in hrefs(page) if ID_NUMBER in link]


def test_pages_and_the_api_driven_with_real_numbers_leave_none_in_the_log(
    superuser_client, senior, log_lines
):
    # given requests that carry an ID-card number and a phone in every place a client can put them
    worker = Client()
    worker.post("/registry/", {"q": ID_NUMBER})
    worker.post("/registry/", {"q": PHONE})
    superuser_client.post(SENIORS, {"q": ID_NUMBER, "_search": "1"})
    superuser_client.get(f"{SENIORS}?q={ID_NUMBER}")
    superuser_client.get(f"/registry/{ID_NUMBER}abc/")  # a 404 with the number in the path
    api = Client()
    api.post(
        "/api/v1/auth/token/", {"username": ID_NUMBER, "password": PHONE}, content_type="application/json"
    )
    api.post(
        "/api/v1/vouchers/verify/", f'{{"token": "{ID_NUMBER}X{PHONE}"}}', content_type="application/json"
    )
    api.post("/api/v1/redemptions/", "{" + ID_NUMBER, content_type="application/json")
    logging.getLogger("tests.pii").warning("callback %s for %sabc", PHONE, ID_NUMBER)
    logging.getLogger("tests.pii").warning('{"id": "%s", "phone": "%s"}', ID_NUMBER, PHONE)
    encoded = "".join(f"%3{digit}" for digit in ID_NUMBER[:17]) + ID_NUMBER[17]
    logging.getLogger("django.server").info('"GET /admin/?q=%s HTTP/1.1" 302 0', encoded)

    # then no log line holds either, in clear
    written = log_lines.getvalue()
    assert written.strip(), "nothing was logged: the test would prove nothing"
    assert ID_NUMBER not in written and ID_NUMBER[:14] not in written
    assert PHONE not in written


def test_the_readmes_access_log_format_logs_no_query_string():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    formats = re.findall(r"--access-logformat '([^']+)'", readme)
    assert formats, "the README's gunicorn command has no access-log format"
    for access_format in formats:
        assert "%(U)s" in access_format  # the path alone
        for leaky in ("%(r)s", "%(q)s", "%(f)s", "%({"):  # request line, query, referrer, headers
            assert leaky not in access_format
