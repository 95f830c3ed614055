"""The bureau's policy pages (/policies/) through Django's test client: the policy in force in
plain words, copying it to a draft, editing tiers and rules (a bad condition is refused at its
field, with the path of the problem, and saves nothing), the preview, the simulation, activation
from next month, read-only officers and workers, published versions that never change, and an
evaluation run with its progress."""

import datetime as dt
import html
import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext

from config.celery import app as celery_app
from config.months import last_day, local_date, next_month
from config.roles import BUREAU, FINANCE, OFFICER, WORKER, setup_roles
from eligibility.conditions import born_on_or_before
from eligibility.models import Determination, EvaluationRun, Policy, PolicyRule, Region
from eligibility.services import (
    assign_region_scope,
    copy_policy,
    ensure_default_policy,
    evaluate_eligibility,
    register_senior,
)
from tests.factories import RegionFactory, UserFactory, make_id_card_number

LIST = reverse("policy-list")
EVALUATE = reverse("policy-evaluate")
LOW_FEE_80 = "low_fee_80_empty_nest_no_assistance"


def t(text: str) -> str:
    """`text` as a Chinese page shows it, HTML-escaped."""
    with translation.override("zh-hans"):
        return escape(gettext(text))


def page_of(response) -> str:
    return response.content.decode()


def today() -> dt.date:
    return local_date(timezone.now())


def aged(years: int) -> dt.date:
    """The birth date of someone who turned `years` a month ago."""
    return born_on_or_before(today(), years) - dt.timedelta(days=30)


def make_user(username: str, role: str, region: Region | None = None):
    from django.contrib.auth.models import Group

    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=role))
    if region is not None:
        assign_region_scope(user=user, region=region, by=None)
    return user


@pytest.fixture
def city(db) -> dict:
    """The default policy in force; a community with three empty-nest seniors of 77, 85 and 65
    (paid, low fee, paid: the low-fee age is 80), and a user of each role that reads policies."""
    setup_roles()  # the migration made them, but a transactional test before this one flushed them
    policy = ensure_default_policy()
    district = RegionFactory(code="330106", name="西湖区", level=Region.Level.DISTRICT)
    subdistrict = RegionFactory(
        code="330106001", name="北山街道", level=Region.Level.SUBDISTRICT, parent=district
    )
    community = RegionFactory(
        code="330106001001", name="保俶社区", level=Region.Level.COMMUNITY, parent=subdistrict
    )
    empty_nest = {"living_arrangement": "empty_nest", "children_in_city": False}
    seniors = {
        age: register_senior(
            id_card_number=make_id_card_number(birth_date=aged(age), serial=age),
            name=name,
            community=community,
            **(empty_nest if age != 65 else {}),
        )
        for age, name in ((77, "张秀兰"), (85, "孙桂英"), (65, "赵德明"))
    }
    evaluate_eligibility(as_of=today())
    users = {
        "bureau": make_user("bureau", BUREAU),
        "officer": make_user("officer", OFFICER, subdistrict),
        "worker": make_user("worker", WORKER, community),
        "finance": make_user("finance", FINANCE),
    }
    return {"policy": policy, "seniors": seniors, "users": users}


@pytest.fixture
def draft(city) -> Policy:
    return copy_policy(policy=city["policy"], by=city["users"]["bureau"])


def signed_in(client, user):
    client.force_login(user)
    return client


def rule_url(rule: PolicyRule) -> str:
    return reverse("policy-rule", kwargs={"policy_id": rule.policy_id, "rule_id": rule.pk})


def rule_post(rule: PolicyRule, condition: str, action: str = "save") -> dict:
    """A rule's form as the page posts it, with the condition typed as given."""
    return {
        "code": rule.code,
        "label": rule.label,
        "label_en": rule.label_en,
        "grants": f"tier:{rule.tier_id}" if rule.tier_id else f"care:{rule.care_visit_class}",
        "condition": condition,
        "action": action,
    }


def field_errors(page: str, field_id: str) -> list[str]:
    """The error texts shown under the input of that id."""
    return [
        html.unescape(text)
        for text in re.findall(rf'<p class="error-text" id="{field_id}_error">([^<]*)</p>', page)
    ]


LOWERED_TO_75 = json.dumps(
    {
        "all": [
            {"fact": "age", "op": ">=", "value": 75},
            {"fact": "living_arrangement", "op": "in", "value": ["alone", "empty_nest"]},
            {"fact": "children_in_city", "op": "is", "value": False},
            {"fact": "receives_civil_affairs_assistance", "op": "is", "value": False},
        ]
    }
)


# --- The policy in force, read ---


@pytest.mark.parametrize("role", ["bureau", "officer", "worker"])
def test_the_policy_in_force_reads_in_plain_words(client, city, role):
    # When someone who works with seniors opens the policies
    response = signed_in(client, city["users"][role]).get(LIST)

    # Then they read the policy in force: its name, version, dates, population and tier terms
    page = page_of(response)
    assert response.status_code == 200
    assert "居家养老服务默认政策" in page
    assert "<code>default</code>" in page
    assert "2025-01-01" in page
    assert "年满60周岁" in page  # who it covers
    assert "70%" in page and "30%" in page and "¥200.00" in page and "¥300.00" in page
    # And each rule as its label and its condition in plain words, tier rules and care-visit rules
    assert "80岁以上空巢且未享受民政救助" in page
    assert "年满80周岁 且 （独居或空巢 且 子女不在本市） 且 未享受民政救助" in page
    assert t("Class A: a home visit every month") in page
    assert "计划生育特殊家庭 且 独居" in page
    # And only the bureau may change it or evaluate the registry
    bureau = role == "bureau"
    assert (reverse("policy-copy", args=[city["policy"].pk]) in page) == bureau
    assert (EVALUATE in page) == bureau
    assert ('id="drafts"' in page) == bureau


def test_the_policies_are_not_for_finance(client, city):
    response = signed_in(client, city["users"]["finance"]).get(LIST)

    assert response.status_code == 403
    assert t("Not permitted") in page_of(response)


def test_the_bureaus_home_links_to_the_policies(client, city):
    page = page_of(signed_in(client, city["users"]["bureau"]).get(reverse("home")))

    assert f'class="link-card" href="{LIST}"' in page


# --- Copy, edit, preview, simulate, activate ---


def test_the_bureau_copies_edits_simulates_and_activates_a_policy_from_next_month(client, city):
    bureau = city["users"]["bureau"]
    signed_in(client, bureau)
    current = city["policy"]

    # When the bureau copies the policy in force (the same code: its next version)
    copied = client.post(reverse("policy-copy", args=[current.pk]), {"code": "", "name": ""})

    # Then a draft, version 2, opens in the editor, each rule's condition in its own textarea
    draft = Policy.objects.get(code="default", status=Policy.Status.DRAFT)
    assert (draft.version, draft.based_on, draft.created_by) == (2, current, bureau)
    assert copied.status_code == 302 and copied.url == reverse("policy-detail", args=[draft.pk])
    page = page_of(client.get(copied.url))
    assert f'id="rule-{LOW_FEE_80}-condition"' in page

    # When they lower the low-fee age from 80 to 75, first previewing it
    rule = draft.rules.get(code=LOW_FEE_80)
    previewed = client.post(rule_url(rule), rule_post(rule, LOWERED_TO_75, action="preview"))

    # Then the page puts it in plain words and nothing is saved yet
    assert previewed.status_code == 200
    assert "年满75周岁 且 独居或空巢 且 子女不在本市 且 未享受民政救助" in page_of(previewed)
    assert "aged 75 or over" in page_of(previewed)
    rule.refresh_from_db()
    assert rule.condition["all"][0]["value"] == 80

    # When they save it
    saved = client.post(rule_url(rule), rule_post(rule, LOWERED_TO_75))
    assert saved.status_code == 302 and saved.url.endswith(f"#rule-{LOW_FEE_80}")
    rule.refresh_from_db()
    assert rule.condition["all"][0]["value"] == 75
    assert t("Saved.") in page_of(client.get(saved.url))

    # And simulate the draft
    simulated = client.get(reverse("policy-simulate", args=[draft.pk]))

    # Then the one senior of 77 moves from paid to low fee, and the budget grows by ¥200 a month
    page = page_of(simulated)
    assert simulated.status_code == 200
    assert "no-store" in simulated["Cache-Control"]
    assert '<dd id="sim-seniors">3</dd>' in page
    assert '<dd id="sim-tier-moved">1</dd>' in page
    moved = re.findall(r'<tr class="row-moved">(.*?)</tr>', page, re.S)
    assert len(moved) == 1 and "有偿" in moved[0] and "低偿" in moved[0] and ">1</td>" in moved[0]
    assert "+¥200.00" in page
    assert Determination.objects.filter(policy=draft).count() == 0  # nothing written

    # When they activate it: the date proposed is the first day of next month
    activate = reverse("policy-activate", args=[draft.pk])
    form = page_of(client.get(activate))
    first_of_next_month = next_month(today())
    assert f'value="{first_of_next_month:%Y-%m-%d}"' in form
    assert '<dd id="sim-tier-moved">1</dd>' in form  # the confirmation says whom it moves

    # A date in the past is refused at the field, and the draft stays a draft
    refused = client.post(activate, {"effective_from": (today() - dt.timedelta(days=1)).isoformat()})
    assert refused.status_code == 400
    assert field_errors(page_of(refused), "id_effective_from")
    draft.refresh_from_db()
    assert draft.is_draft

    activated = client.post(activate, {"effective_from": first_of_next_month.isoformat()})

    # Then the draft is in force from next month and the current version ends this month
    assert activated.status_code == 302
    draft.refresh_from_db()
    current.refresh_from_db()
    assert (draft.status, draft.effective_from, draft.activated_by) == ("active", first_of_next_month, bureau)
    assert (current.status, current.effective_until) == ("retired", last_day(today()))
    # And nobody's determination changed yet: that is the next evaluation's
    senior = city["seniors"][77]
    assert Determination.objects.get(senior=senior, is_current=True).tier.code == "paid"
    # And the list shows it scheduled
    page = page_of(client.get(LIST))
    assert 'id="scheduled"' in page and reverse("policy-detail", args=[draft.pk]) in page


def test_a_second_activation_overlapping_a_scheduled_version_is_refused_at_the_date(client, city, draft):
    # Given a version already scheduled from next month, and another draft
    bureau = city["users"]["bureau"]
    signed_in(client, bureau)
    month = next_month(today())
    assert (
        client.post(reverse("policy-activate", args=[draft.pk]), {"effective_from": month}).status_code == 302
    )
    other = copy_policy(policy=draft, by=bureau)

    # When the bureau activates the other one from the same date
    response = client.post(reverse("policy-activate", args=[other.pk]), {"effective_from": month})

    # Then the overlap is shown at the date, and the other draft stays a draft
    assert response.status_code == 400
    assert field_errors(page_of(response), "id_effective_from")
    other.refresh_from_db()
    assert other.is_draft


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ('{"fact": "age", "op": ">=", "value": 80', "第 1 行"),  # not JSON at all
        ('{"all": [{"fact": "age", "op": ">=", "value": "eighty"}]}', "all[0].value"),
        ('{"any": [{"fact": "sex", "op": "in", "value": ["M"]}, {"fact": "pets"}]}', "any[1]"),
        ('{"all": []}', ""),
        ("", ""),
    ],
)
@pytest.mark.parametrize("action", ["save", "preview"])
def test_a_bad_condition_is_refused_at_its_field_and_saves_nothing(client, city, draft, typed, shown, action):
    # Given the bureau editing a rule of a draft
    signed_in(client, city["users"]["bureau"])
    rule = draft.rules.get(code=LOW_FEE_80)
    before = rule.condition

    # When they save (or preview) a condition that is not valid JSON or not a valid condition
    response = client.post(rule_url(rule), rule_post(rule, typed, action=action))

    # Then the error is shown at the condition's field, saying where the problem is
    page = page_of(response)
    errors = field_errors(page, f"rule-{LOW_FEE_80}-condition")
    assert len(errors) == 1, page
    assert shown in errors[0]
    # And the rule is open on the page with what was typed, and nothing was saved
    assert f'<details class="edit-item" id="rule-{LOW_FEE_80}" open>' in page
    assert escape(typed) in page
    assert response.status_code == (400 if action == "save" else 200)
    rule.refresh_from_db()
    assert rule.condition == before


def test_the_population_is_previewed_and_a_bad_one_refused(client, city, draft):
    signed_in(client, city["users"]["bureau"])
    url = reverse("policy-detail", args=[draft.pk])
    values = {"name": draft.name, "name_en": draft.name_en}

    # A preview puts the population in words and saves nothing
    population = '{"fact": "age", "op": ">=", "value": 65}'
    previewed = client.post(url, {**values, "population": population, "action": "preview"})
    assert previewed.status_code == 200 and "年满65周岁" in page_of(previewed)
    draft.refresh_from_db()
    assert draft.population["value"] == 60

    # A bad one is refused at its field, and a good one saved
    refused = client.post(url, {**values, "population": '{"fact": "income"}', "action": "save"})
    assert refused.status_code == 400
    assert field_errors(page_of(refused), "policy-population")
    saved = client.post(url, {**values, "name": "新政策", "population": population, "action": "save"})
    assert saved.status_code == 302
    draft.refresh_from_db()
    assert (draft.name, draft.population["value"]) == ("新政策", 65)


def test_tiers_are_added_changed_and_an_unused_one_deleted(client, city, draft):
    signed_in(client, city["users"]["bureau"])
    tier_values = {
        "code": "partial",
        "name": "部分补贴",
        "name_en": "Partly subsidized",
        "rank": 4,
        "government_share_percent": "50",
        "monthly_face_value": "100",
    }

    # When the bureau adds a tier with a 50 % share and ¥100 a month
    added = client.post(reverse("policy-tier-add", args=[draft.pk]), tier_values)

    # Then it is a tier of the draft with a 0.5 rate
    assert added.status_code == 302 and added.url.endswith("#tier-partial")
    tier = draft.tiers.get(code="partial")
    assert (tier.government_share_rate, tier.monthly_face_value.amount) == (
        Decimal("0.5000"),
        Decimal("100.00"),
    )

    # A share over 100 % and a rank already taken are refused at their fields
    tier_url = reverse("policy-tier", args=[draft.pk, tier.pk])
    too_much = client.post(tier_url, {**tier_values, "government_share_percent": "120"})
    assert too_much.status_code == 400
    assert field_errors(page_of(too_much), "tier-partial-government_share_percent")
    taken = client.post(tier_url, {**tier_values, "rank": 1})
    assert taken.status_code == 400
    assert '<p class="error-text" role="alert">' in page_of(taken)  # above the tier's form
    tier.refresh_from_db()
    assert tier.rank == 4

    # A change of terms is saved
    assert client.post(tier_url, {**tier_values, "government_share_percent": "52.5"}).status_code == 302
    tier.refresh_from_db()
    assert tier.government_share_rate == Decimal("0.5250")

    # The unused tier can be deleted; one that rules grant cannot
    used = draft.tiers.get(code="low_fee")
    refused = client.post(reverse("policy-tier-delete", args=[draft.pk, used.pk]), follow=True)
    assert draft.tiers.filter(pk=used.pk).exists()
    assert "messages" in page_of(refused)
    assert client.post(reverse("policy-tier-delete", args=[draft.pk, tier.pk])).status_code == 302
    assert not draft.tiers.filter(code="partial").exists()


def test_rules_are_added_for_a_tier_or_a_care_class_and_deleted(client, city, draft):
    signed_in(client, city["users"]["bureau"])
    low_fee = draft.tiers.get(code="low_fee")
    condition = '{"fact": "dementia", "op": "is", "value": true}'
    new = {"code": "low_fee_dementia", "label": "失智老人", "label_en": "Dementia", "condition": condition}

    # A new rule granting the low fee tier, and another granting class B
    added = client.post(
        reverse("policy-rule-add", args=[draft.pk]), {**new, "grants": f"tier:{low_fee.pk}", "action": "save"}
    )
    assert added.status_code == 302
    assert draft.rules.get(code="low_fee_dementia").tier == low_fee
    care = {**new, "code": "care_b_dementia", "grants": "care:B", "action": "save"}
    assert client.post(reverse("policy-rule-add", args=[draft.pk]), care).status_code == 302
    rule = draft.rules.get(code="care_b_dementia")
    assert (rule.tier, rule.care_visit_class) == (None, "B")

    # A code already used in the draft is refused, and nothing is added
    again = client.post(reverse("policy-rule-add", args=[draft.pk]), care)
    assert again.status_code == 400
    assert draft.rules.filter(code="care_b_dementia").count() == 1

    # A tier of another policy cannot be granted
    foreign = city["policy"].tiers.get(code="low_fee")
    other = client.post(
        reverse("policy-rule-add", args=[draft.pk]),
        {**new, "code": "x", "grants": f"tier:{foreign.pk}", "action": "save"},
    )
    assert other.status_code == 400
    assert field_errors(page_of(other), "new-rule-grants")
    assert not draft.rules.filter(code="x").exists()

    # And a rule is deleted
    assert client.post(reverse("policy-rule-delete", args=[draft.pk, rule.pk])).status_code == 302
    assert not draft.rules.filter(code="care_b_dementia").exists()


def test_a_copy_to_a_code_that_has_a_draft_is_refused_at_the_code(client, city, draft):
    signed_in(client, city["users"]["bureau"])

    response = client.post(reverse("policy-copy", args=[city["policy"].pk]), {"code": "", "name": ""})

    assert response.status_code == 400
    assert field_errors(page_of(response), f"copy-{city['policy'].pk}-code")
    assert reverse("policy-detail", args=[draft.pk]) in page_of(response)  # a link to the draft
    assert Policy.objects.filter(status=Policy.Status.DRAFT).count() == 1

    # Another code makes version 1 of a new policy
    other = client.post(
        reverse("policy-copy", args=[city["policy"].pk]), {"code": "hk-cvs", "name": "社区照顾"}
    )
    assert other.status_code == 302
    assert Policy.objects.get(code="hk-cvs").version == 1
    # A code that is not a slug is refused by the form
    bad = client.post(reverse("policy-copy", args=[city["policy"].pk]), {"code": "新 政策"})
    assert bad.status_code == 400 and not Policy.objects.filter(code="新 政策").exists()


def test_a_draft_is_deleted(client, city, draft):
    signed_in(client, city["users"]["bureau"])

    response = client.post(reverse("policy-delete", args=[draft.pk]), follow=True)

    assert response.redirect_chain[-1][0] == LIST
    assert not Policy.objects.filter(pk=draft.pk).exists()
    assert Policy.objects.filter(pk=city["policy"].pk).exists()


# --- Who may change what ---


@pytest.mark.parametrize("role", ["officer", "worker", "finance"])
def test_others_than_the_bureau_cannot_see_drafts_edit_simulate_activate_or_evaluate(
    client, city, draft, role
):
    signed_in(client, city["users"][role])
    rule = draft.rules.get(code=LOW_FEE_80)
    tier = draft.tiers.get(code="low_fee")
    month = next_month(today()).isoformat()

    # Every page of a draft, and every write, is the friendly 403
    for url in (
        reverse("policy-detail", args=[draft.pk]),
        reverse("policy-simulate", args=[draft.pk]),
        reverse("policy-activate", args=[draft.pk]),
        reverse("policy-copy", args=[city["policy"].pk]),
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        assert t("Not permitted") in page_of(response)
    runs = EvaluationRun.objects.count()
    writes = [
        (rule_url(rule), rule_post(rule, LOWERED_TO_75)),
        (reverse("policy-rule-delete", args=[draft.pk, rule.pk]), {}),
        (reverse("policy-tier", args=[draft.pk, tier.pk]), {"code": "low_fee", "rank": 2, "name": "x"}),
        (reverse("policy-tier-delete", args=[draft.pk, tier.pk]), {}),
        (reverse("policy-activate", args=[draft.pk]), {"effective_from": month}),
        (reverse("policy-copy", args=[city["policy"].pk]), {"code": "other"}),
        (reverse("policy-delete", args=[draft.pk]), {}),
        (reverse("policy-detail", args=[draft.pk]), {"name": "x", "population": "{}"}),
        (EVALUATE, {}),
    ]
    for url, data in writes:
        assert client.post(url, data).status_code == 403, url

    # And nothing changed
    rule.refresh_from_db()
    draft.refresh_from_db()
    assert rule.condition["all"][0]["value"] == 80
    assert draft.is_draft and draft.rules.count() == city["policy"].rules.count()
    assert Policy.objects.count() == 2 and EvaluationRun.objects.count() == runs


@pytest.mark.parametrize("role", ["officer", "worker"])
def test_officers_and_workers_read_a_published_version_without_its_editor(client, city, role):
    response = signed_in(client, city["users"][role]).get(reverse("policy-detail", args=[city["policy"].pk]))

    page = page_of(response)
    assert response.status_code == 200
    assert "年满80周岁" in page
    assert "<textarea" not in page and '<form method="post" action="/policies/' not in page


def test_a_published_version_is_never_edited(client, city):
    # Given the bureau and the policy in force
    signed_in(client, city["users"]["bureau"])
    policy = city["policy"]
    rule = policy.rules.get(code=LOW_FEE_80)
    tier = policy.tiers.get(code="low_fee")

    # Its page is read-only, with a way to copy it instead
    page = page_of(client.get(reverse("policy-detail", args=[policy.pk])))
    assert "<textarea" not in page
    assert reverse("policy-copy", args=[policy.pk]) in page

    # And every edit is refused with the reason, back on its page
    tier_values = {
        "code": "low_fee",
        "name": "低偿",
        "rank": 2,
        "government_share_percent": "70",
        "monthly_face_value": "320",
    }
    for url, data in [
        (rule_url(rule), rule_post(rule, LOWERED_TO_75)),
        (reverse("policy-rule-delete", args=[policy.pk, rule.pk]), {}),
        (reverse("policy-tier", args=[policy.pk, tier.pk]), tier_values),
        (reverse("policy-rule-add", args=[policy.pk]), rule_post(rule, LOWERED_TO_75)),
        (reverse("policy-detail", args=[policy.pk]), {"name": "x", "population": "{}", "action": "save"}),
        (reverse("policy-activate", args=[policy.pk]), {"effective_from": next_month(today()).isoformat()}),
        (reverse("policy-delete", args=[policy.pk]), {}),
    ]:
        response = client.post(url, data, follow=True)
        assert response.redirect_chain[-1][0] == reverse("policy-detail", args=[policy.pk]), url
        assert "message-error" in page_of(response), url
    rule.refresh_from_db()
    tier.refresh_from_db()
    policy.refresh_from_db()
    assert rule.condition["all"][0]["value"] == 80
    assert tier.monthly_face_value.amount == Decimal("200.00")
    assert (policy.status, policy.name) == ("active", "居家养老服务默认政策")


def test_only_a_draft_is_simulated(client, city):
    signed_in(client, city["users"]["bureau"])

    response = client.get(reverse("policy-simulate", args=[city["policy"].pk]))

    assert response.status_code == 302 and response.url == reverse("policy-detail", args=[city["policy"].pk])


# --- Evaluation runs ---


def test_the_evaluation_button_runs_the_registry_and_its_page_shows_the_outcome(
    client, city, django_capture_on_commit_callbacks, monkeypatch
):
    # Given tasks that run where they are sent (as without Redis; with REDIS_URL they would wait)
    monkeypatch.setattr(celery_app.conf, "CELERY_TASK_ALWAYS_EAGER", True)
    bureau = city["users"]["bureau"]
    signed_in(client, bureau)

    # When the bureau presses the button, the run is queued and runs once the request commits
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(EVALUATE)
    assert len(callbacks) == 1
    run = EvaluationRun.objects.latest("id")
    assert response.status_code == 302 and response.url == reverse("policy-run", args=[run.pk])

    # Then the run is done as of today, by the bureau, and its page and progress say so
    run.refresh_from_db()
    assert (run.state, run.as_of, run.started_by, run.evaluated) == ("done", today(), bureau, 3)
    page = page_of(client.get(response.url))
    assert '<dd id="count-evaluated">3</dd>' in page
    assert '<dd id="count-changed">0</dd>' in page  # nothing changed since the fixture's evaluation
    assert "evaluation-progress.js" not in page  # nothing left to follow
    progress = client.get(reverse("policy-run-progress", args=[run.pk])).json()
    assert progress["finished"] is True and progress["done"] == progress["total"]
    assert (progress["evaluated"], progress["changed"], progress["retired"]) == (3, 0, 0)
    # And the list of recent evaluations holds it
    assert reverse("policy-run", args=[run.pk]) in page_of(client.get(LIST))


def test_a_queued_run_shows_a_progress_bar_that_follows_its_progress(client, city):
    signed_in(client, city["users"]["bureau"])
    run = EvaluationRun.objects.create(as_of=today(), started_by=city["users"]["bureau"])

    page = page_of(client.get(reverse("policy-run", args=[run.pk])))
    progress = client.get(reverse("policy-run-progress", args=[run.pk]))

    assert '<progress class="progress" id="run-progress"' in page
    assert f'data-progress-url="{reverse("policy-run-progress", args=[run.pk])}"' in page
    assert "evaluation-progress.js" in page and 'http-equiv="refresh"' in page  # with or without scripts
    assert progress["Content-Type"] == "application/json"
    assert "no-store" in progress["Cache-Control"]
    assert progress.json()["finished"] is False and progress.json()["state"] == "queued"


@pytest.mark.parametrize("role", ["officer", "worker", "finance"])
def test_evaluation_runs_are_the_bureaus(client, city, role):
    run = EvaluationRun.objects.create(as_of=today())
    signed_in(client, city["users"][role])

    assert client.get(reverse("policy-run", args=[run.pk])).status_code == 403
    assert client.get(reverse("policy-run-progress", args=[run.pk])).status_code == 403


def test_the_facts_reference_lists_every_fact_beside_the_editor(client, city, draft):
    page = page_of(signed_in(client, city["users"]["bureau"]).get(reverse("policy-detail", args=[draft.pk])))

    reference = page[page.index('id="facts"') :]
    for name in ("age", "living_arrangement", "receives_dibao", "special_difficulty"):
        assert f"<code>{name}</code>" in reference
    assert "<code>empty_nest</code>" in reference and "<code>not_in</code>" in reference


def test_an_edited_tier_term_shows_in_the_simulated_budget(client, city, draft):
    # Given the low-fee face value raised from ¥200 to ¥250 in the draft
    signed_in(client, city["users"]["bureau"])
    tier = draft.tiers.get(code="low_fee")
    values = {
        "code": "low_fee",
        "name": "低偿",
        "name_en": "Low fee",
        "rank": 2,
        "government_share_percent": "70",
        "monthly_face_value": "250",
    }
    assert client.post(reverse("policy-tier", args=[draft.pk, tier.pk]), values).status_code == 302

    # Then nobody moves, and the one low-fee senior costs ¥50 a month more
    page = page_of(client.get(reverse("policy-simulate", args=[draft.pk])))
    assert '<dd id="sim-tier-moved">0</dd>' in page
    assert '<dd id="sim-difference">+¥50.00</dd>' in page
    assert city["policy"].tiers.get(code="low_fee").monthly_face_value.amount == 200  # in force: unchanged
