"""Every URL of the project, for every role: nobody sees a senior outside their scope.

The walk reads the URL configuration itself, so a page added later is walked too; a URL whose
parameter the walk does not know fails the test until it is taught which object stands for it.
Given a worker of community A, an officer of A's subdistrict, and seniors in A, in A's sibling
community and in another district (B): the worker gets 404 for the others' pages, the officer for
B's, the bureau sees all; lists and exports hold only what the role may see; provider staff and
finance see no registry; anonymous visitors are sent to sign in.
"""

import datetime as dt
import io
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from openpyxl import load_workbook

from billing.models import SettlementExport
from billing.services import settle
from carevisits.services import record_visit
from config.months import month_of, previous_month
from eligibility.models import EvaluationRun, ImportJob, RegionScope
from eligibility.services import copy_policy, ensure_default_policy, evaluate_eligibility, register_senior
from providers.services import register_device
from tests.e2e.conftest import make_user
from tests.factories import (
    ProviderFactory,
    RegionFactory,
    StaffMemberFactory,
    make_community,
    make_id_card_number,
    make_priced_contract,
)
from vouchers.models import Voucher
from vouchers.services import issue_vouchers
from vouchers.tokens import voucher_token

# URLs outside the walk, and why: the admin has its own tests (superusers only), the API is the
# scanner's (device tokens, tests/vouchers/test_api.py), i18n and sign-in/out are not scoped.
SKIPPED_PREFIXES = ("admin/", "api/", "i18n/", "login/", "logout/", "static/")
# The senior's own page and its "this service did not happen": the signed code is the key (DESIGN.md §5)
PUBLIC = {"senior-voucher", "senior-dispute", "scan", "scan-service-worker"}  # the scanner signs in itself
ROLES = ("bureau", "officer", "worker", "provider", "staff", "finance")
# Whose seniors each registry role may see: the worker's community (mine), its sibling in the
# same subdistrict, and a community of another district (other). Other roles see none.
MAY_SEE = {"bureau": {"mine", "sibling", "other"}, "officer": {"mine", "sibling"}, "worker": {"mine"}}


def walk(patterns=None, prefix=""):
    """(route, name, parameter names) of every URL pattern, includes flattened."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry.name, list(entry.pattern.regex.groupindex)


def routes():
    return [r for r in walk() if not r[0].lstrip("^").startswith(SKIPPED_PREFIXES) and r[1]]


@pytest.fixture
def city(db):
    policy = ensure_default_policy()
    mine = make_community("A")
    sibling = RegionFactory(code="AC2", name="宝石社区", level="community", parent=mine.parent)
    other = make_community("B")
    names = {"mine": "张秀兰", "sibling": "孙桂英", "other": "赵德明"}
    seniors = {
        key: register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1940 + i, 5, 1)),
            name=names[key],
            community=region,
            three_no=True,
            special_difficulty=True,  # care-visit class C: the care-visit pages walk them too
            phone=f"1380571000{i}",
        )
        for i, (key, region) in enumerate((("mine", mine), ("sibling", sibling), ("other", other)))
    }
    evaluate_eligibility(as_of=dt.date.today())
    issue_vouchers(period=dt.date.today().replace(day=1))
    users = {role: make_user(role, role) for role in ROLES}
    RegionScope.objects.create(user=users["worker"], region=mine)
    RegionScope.objects.create(user=users["officer"], region=mine.parent)
    other_worker = make_user("worker-b", "worker")
    RegionScope.objects.create(user=other_worker, region=other)
    provider = ProviderFactory()
    for role in ("provider", "staff"):
        StaffMemberFactory(user=users[role], provider=provider)
    device, _token = register_device(user=users["staff"])  # the team pages walk the staff's phone
    contract = make_priced_contract(area=[mine.parent], provider=provider)  # the provider pages walk it
    jobs = {
        "mine": ImportJob.objects.create(created_by=users["worker"], filename="a.xlsx", workbook=b""),
        "other": ImportJob.objects.create(created_by=other_worker, filename="b.xlsx", workbook=b""),
    }
    # The policy pages walk a draft (its editor, simulation and activation) and an evaluation run.
    draft = copy_policy(policy=policy, by=users["bureau"])
    run = EvaluationRun.objects.create(as_of=dt.date.today(), started_by=users["bureau"])
    policies = {"published": policy, "draft": draft, "run": run}
    # The finance pages walk a statement: last month settled by the schedule's job.
    settled = settle(month=previous_month(month_of(timezone.now())), job="test:scope-walk")
    statement = settled.statements[0]
    # and a workbook of that month, asked for by finance
    export = SettlementExport.objects.create(month=settled.month, requested_by=users["finance"], rows_total=0)
    # The care-visit pages walk an urgent finding of each senior (its "close" action).
    records = {
        key: record_visit(
            senior=senior, by=users["bureau"], mode="home", urgent=True, referral="medical",
            visited_at=timezone.now() - dt.timedelta(hours=1),
        )
        for key, senior in seniors.items()
    }  # fmt: skip
    return {
        "records": records,
        "statement": statement,
        "export": export,
        "seniors": seniors,
        "users": users,
        "jobs": jobs,
        "policies": policies,
        "provider": provider,
        "contract": contract,
        "device": device,
    }


def url_for(route: str, params: list[str], city, whose: str) -> str:
    """The route with each parameter filled by the object of `whose` ('mine', 'sibling', 'other')."""
    senior = city["seniors"][whose]
    job = city["jobs"].get(whose, city["jobs"]["other"])
    values = {
        "senior_id": senior.pk,
        "community_id": senior.community_id,  # its contact page (/registry/contacts/<id>/)
        "job_id": job.pk,
        "token": voucher_token(Voucher.objects.filter(senior=senior).first()),
        "voucher_id": Voucher.objects.filter(senior=senior).first().pk,
        "period": dt.date.today().strftime("%Y-%m"),
        "user_id": city["users"]["worker"].pk,  # an account: the bureau's to manage
        # A policy is the city's, not a region's: every role walks the same draft.
        "policy_id": city["policies"]["draft"].pk,
        "tier_id": city["policies"]["draft"].tiers.first().pk,
        "rule_id": city["policies"]["draft"].rules.first().pk,
        "run_id": city["policies"]["run"].pk,
        # A provider and its contract are the city's (the bureau's pages), not a region's.
        "provider_id": city["provider"].pk,
        "contract_id": city["contract"].pk,
        "service_item_id": city["contract"].items.first().service_item_id,
        # A provider's team (/providers/<id>/staff|devices/): its staff member and their phone.
        "staff_id": city["device"].staff_id,
        "device_id": city["device"].pk,
        # A statement is a provider's month, the finance pages' (not a region's).
        "statement_id": city["statement"].pk,
        "export_id": city["export"].pk,
        # A care visit is its senior's (/visits/records/<id>/close-urgent/).
        "record_id": city["records"][whose].pk,
    }
    unknown = set(params) - set(values)
    assert not unknown, f"the scope walk does not know what {unknown} of {route} stand for: teach it"
    url = "/" + route.lstrip("^").rstrip("$")
    for name in params:
        url = _fill(url, name, str(values[name]))
    return url.replace("\\", "")


def _fill(url: str, name: str, value: str) -> str:
    url = re.sub(rf"\(\?P<{name}>[^)]*\)", value, url)
    return re.sub(rf"<(?:\w+:)?{name}>", value, url)


# Pages in scope that answer other than 200: the officer reads but never changes; an action
# redirects to its result (a job without problems has no marked-up copy: back to its page).
READ_ONLY_REFUSED = {
    "registry-contact-edit",
    "registry-edit",
    "registry-status",
    "registry-override-set",
    "registry-override-end",
    "voucher-reissue",
    "carevisits-record",
    "carevisits-pair",
    "carevisits-close-urgent",
}
# (a reissue posted without a reason goes back to the senior's page with the message)
REDIRECTING = {
    "registry-import-annotated",
    "registry-import-confirm",
    "voucher-reissue",
    "carevisits-close-urgent",
}
# A form posted empty (the walk posts no data) comes back with its errors.
EMPTY_FORM_REFUSED = {"registry-override-set", "registry-override-end"}


def expected_when_allowed(name: str, role: str) -> int:
    if role == "officer" and name in READ_ONLY_REFUSED:
        return 403
    if name in EMPTY_FORM_REFUSED:
        return 400
    return 302 if name in REDIRECTING else 200


def scoped(params) -> bool:
    return bool({"senior_id", "job_id", "user_id", "voucher_id", "community_id", "record_id"} & set(params))


def test_every_url_is_walked_and_none_is_forgotten(city):
    # Every route outside the skipped prefixes can be built from the walk's objects (a new
    # parameter fails here until the walk is taught it), and the registry's pages are among them
    walked = routes()
    for route, _name, params in walked:
        assert url_for(route, params, city, "mine").startswith("/")
    names = {name for _route, name, _params in walked}
    assert {"registry-list", "registry-senior", "registry-edit", "registry-import", "accounts-edit"} <= names
    assert {"policy-list", "policy-detail", "policy-simulate", "policy-activate", "policy-run"} <= names


@pytest.mark.parametrize("role", ROLES)
def test_no_role_opens_a_senior_outside_its_scope(client, city, role):
    client.force_login(city["users"][role])
    may_see = MAY_SEE.get(role, set())
    for route, name, params in routes():
        if name in PUBLIC or not scoped(params):
            continue
        for whose in ("mine", "sibling", "other"):
            if ("job_id" in params or "user_id" in params) and whose != "mine":
                continue
            url = url_for(route, params, city, whose)
            status = client.get(url).status_code
            if status == 405:  # a POST-only action: its scope is checked on POST
                status = client.post(url).status_code
            if "user_id" in params:
                allowed = role == "bureau"  # accounts: the bureau hands out roles and scopes
            elif "job_id" in params:
                # An import is its uploader's (and the bureau's, which sees the city)
                allowed = role == "bureau" or (role == "worker" and whose == "mine")
            else:
                allowed = whose in may_see
            if allowed:
                assert status == expected_when_allowed(name, role), (role, url, status)
            elif "user_id" in params or role in ("provider", "staff", "finance"):
                assert status in (403, 404), (role, url, status)  # not their kind of page at all
            else:
                assert status == 404, (role, url, status)  # a registry role: outside scope is unknown


@pytest.mark.parametrize("role", ROLES)
def test_lists_and_exports_hold_only_the_seniors_in_scope(client, city, role):
    client.force_login(city["users"][role])
    may_see = MAY_SEE.get(role, set())
    names = {key: senior.name for key, senior in city["seniors"].items()}
    for route, name, params in routes():
        if params or name in PUBLIC:
            continue
        response = client.get("/" + route.lstrip("^").rstrip("$").replace("\\", ""))
        if response.status_code != 200:
            continue
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if response.get("Content-Type", "").startswith("application/vnd.openxmlformats"):
            workbook = load_workbook(io.BytesIO(body), read_only=True)
            text = " ".join(
                str(c) for ws in workbook.worksheets for row in ws.iter_rows(values_only=True) for c in row
            )
        else:
            text = body.decode()
        for key, full_name in names.items():
            masked = city["seniors"][key].masked_name
            if key not in may_see:
                assert full_name not in text and masked not in text, (role, name, key)
            assert city["seniors"][key].id_card_number not in text or role in ("bureau", "worker"), (
                role,
                name,
            )


# The policy pages (/policies/): the published versions are read by those who explain them to
# seniors; drafts, simulation, activation and evaluation runs are the bureau's alone.
POLICY_READERS = {"bureau", "officer", "worker"}
READ_BY_POLICY_READERS = {"policy-list"}
POLICY_POST_ONLY = {
    "policy-evaluate",
    "policy-delete",
    "policy-tier-add",
    "policy-tier",
    "policy-tier-delete",
    "policy-rule-add",
    "policy-rule",
    "policy-rule-delete",
}
POLICY_POSTED = POLICY_POST_ONLY | {"policy-detail", "policy-copy", "policy-activate"}


def policy_routes():
    return [r for r in routes() if r[1].startswith("policy-")]


@pytest.mark.parametrize("role", ROLES)
def test_only_the_bureau_opens_drafts_and_changes_policies(client, city, role):
    client.force_login(city["users"][role])
    draft = city["policies"]["draft"]
    rules_before = list(draft.rules.values_list("code", "condition"))
    assert len(policy_routes()) >= 10
    runs = EvaluationRun.objects.count()
    for route, name, params in policy_routes():
        url = url_for(route, params, city, "mine")
        status = client.get(url).status_code
        if role == "bureau":
            assert status == (405 if name in POLICY_POST_ONLY else 200), (role, url, status)
            continue
        if role in POLICY_READERS and name in READ_BY_POLICY_READERS:
            assert status == 200, (role, url, status)
        else:
            assert status == 403, (role, url, status)
        # Every write is refused too, before it touches anything (a page that is only read: 405)
        status = client.post(url, {"code": "x", "effective_from": "2099-01-01"}).status_code
        assert status in ((403,) if name in POLICY_POSTED else (403, 405)), (role, url, status)
    draft.refresh_from_db()
    assert draft.is_draft and list(draft.rules.values_list("code", "condition")) == rules_before
    assert EvaluationRun.objects.count() == runs
    # And the published version reads the same for everyone who reads policies
    published = client.get(f"/policies/{city['policies']['published'].pk}/").status_code
    assert published == (200 if role in POLICY_READERS else 403), (role, published)


def test_anonymous_visitors_are_sent_to_sign_in(client, city):
    for route, name, params in routes():
        if name in PUBLIC:
            continue
        url = url_for(route, params, city, "mine")
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], (url, response.status_code)
