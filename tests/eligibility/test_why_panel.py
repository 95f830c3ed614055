"""The senior's "why" panel and manual tiers (/registry/<id>/): the stored tier with each matched
rule in plain words and the checks that decide it, the nearest rules not met for a worker (not
for an officer), setting and ending a manual tier with refusals on their fields, and the list's
marks for a manual tier and for a determination with a care-visit class but no tier."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape

from eligibility import selectors
from eligibility.conditions import born_on_or_before, describe_check
from eligibility.models import Determination, TierOverride
from eligibility.services import change_senior_status, register_senior
from tests.eligibility.test_pages import LIST, City, build_city, page_of, signed_in, t
from tests.factories import make_id_card_number


def aged(years: int) -> dt.date:
    """A birth date `years` old today, well away from the next birthday."""
    return born_on_or_before(timezone.localdate(), years) - dt.timedelta(days=40)


def register_aged(city, name: str, years: int, serial: int, **facts):
    return register_senior(
        id_card_number=make_id_card_number(birth_date=aged(years), serial=serial),
        name=name,
        community=city.c1,
        **facts,
    )


@pytest.fixture
def city(db) -> City:
    """The two districts of the registry's page tests, with a worker, an officer and 张三 (三无)."""
    return build_city()


@pytest.fixture
def eighty_two(city):
    """钱七, 82, empty-nest with the children elsewhere and no civil-affairs assistance: low fee
    by the 80+ rule (and 60+ paid), care-visit class A by 80+ and empty-nest."""
    return register_aged(city, "钱七", 82, 201, living_arrangement="empty_nest", children_in_city=False)


@pytest.fixture
def seventy_eight(city):
    """孙八, 78, empty-nest with the children elsewhere: paid; the low-fee rules are one fact away."""
    return register_aged(city, "孙八", 78, 202, living_arrangement="empty_nest", children_in_city=False)


def check(fact: str, op: str, value, actual) -> str:
    """One deciding comparison as a Chinese page shows it ("年龄 82 ≥ 80"), HTML-escaped."""
    leaf = {"fact": fact, "op": op, "value": value}
    with translation.override("zh-hans"):
        return escape(describe_check({"leaf": leaf, "actual": actual, "negated": False}))


def why_section(page: str) -> str:
    start = page.index('id="eligibility"')
    return page[start : page.index("</section>", start)]


def manual_section(page: str) -> str:
    start = page.index('id="manual"')
    return page[start : page.index("</section>", start)]


def senior_url(senior) -> str:
    return reverse("registry-senior", args=[senior.pk])


def set_url(senior) -> str:
    return reverse("registry-override-set", args=[senior.pk])


def end_url(senior) -> str:
    return reverse("registry-override-end", args=[senior.pk])


def override_data(**changes) -> dict:
    data = {
        "tier_code": "low_fee",
        "reason": "子女失业，家庭确有困难",
        "expires_on": (timezone.localdate() + dt.timedelta(days=90)).isoformat(),
    }
    return {**data, **changes}


def current(senior) -> Determination:
    return Determination.objects.select_related("tier").get(senior=senior, is_current=True)


# --- The why panel ---


def test_the_panel_shows_each_matched_rule_in_plain_words_with_the_deciding_checks(client, city, eighty_two):
    signed_in(client, city.users["worker"])

    panel = why_section(page_of(client.get(senior_url(eighty_two))))

    # The stored tier and class, the policy version and the as-of date
    assert 'id="why-tier">低偿' in panel
    assert 'id="why-care">A' in panel
    assert t("%(name)s (version %(version)s)") % {"name": "居家养老服务默认政策", "version": 1} in panel
    assert timezone.localdate().isoformat() in panel
    # Each matched rule: its label, the condition in plain words, and the senior's own values
    assert "80岁以上空巢且未享受民政救助" in panel
    assert "年满80周岁 且 （独居或空巢 且 子女不在本市） 且 未享受民政救助" in panel
    assert check("age", ">=", 80, 82) in panel
    assert check("receives_civil_affairs_assistance", "is", False, False) in panel
    assert "60岁以上常住老人" in panel and check("age", ">=", 60, 82) in panel
    assert "80岁以上独居、空巢或留守" in panel
    # The deciding tier's rule comes before the less favourable one's
    assert panel.index("80岁以上空巢且未享受民政救助") < panel.index("60岁以上常住老人")
    # No manual tier anywhere
    assert t("manually set") not in panel


def test_a_worker_sees_the_nearest_rules_not_met_with_what_is_missing(client, city, seventy_eight):
    signed_in(client, city.users["worker"])

    panel = why_section(page_of(client.get(senior_url(seventy_eight))))

    assert 'id="why-tier">有偿' in panel
    nearest = panel[panel.index('id="nearest"') :]
    # The low-fee rules, each one fact away; none of the subsidized ones (百岁老人 is one fact
    # away too, but a tier further)
    assert "80岁以上空巢且未享受民政救助" in nearest and check("age", ">=", 80, 78) in nearest
    assert "空巢且不能自理" in nearest and check("self_care", "in", ["disabled"], "independent") in nearest
    assert "经社区评估有一定收入但确有困难" in nearest
    assert check("hardship_assessed", "is", True, False) in nearest
    assert "百岁老人" not in nearest
    # Those missing no years of age come before the one that waits for a birthday
    assert nearest.index("空巢且不能自理") < nearest.index("80岁以上空巢且未享受民政救助")


def test_an_officer_sees_the_why_but_not_the_nearest_rule(client, city, seventy_eight):
    signed_in(client, city.users["officer"])

    panel = why_section(page_of(client.get(senior_url(seventy_eight))))

    assert "60岁以上常住老人" in panel
    assert 'id="nearest"' not in panel and check("age", ">=", 80, 78) not in panel


def test_the_most_favourable_tier_has_no_nearest_rule(client, city):
    signed_in(client, city.users["worker"])

    panel = why_section(page_of(client.get(senior_url(city.seniors["张三"]))))

    assert 'id="why-tier">无偿' in panel and "三无/特困人员" in panel
    assert 'id="nearest"' not in panel
    assert t("No rule gives a more favourable tier than this one.") in panel


def test_a_determination_with_a_care_class_but_no_tier_says_so(client, city):
    # Given 李四's current determination as a policy without a catch-all tier would record it:
    # care-visit class A, no tier
    senior = city.seniors["李四"]
    stored = current(senior)
    Determination.objects.filter(pk=stored.pk).update(is_current=False)
    Determination.objects.create(
        senior=senior,
        policy=stored.policy,
        tier=None,
        care_visit_class="A",
        matched_rules=["care_a_disabled"],
        as_of=timezone.localdate(),
    )
    signed_in(client, city.users["officer"])

    # Then the page says "no tier" with the class and its rule, and that today's rules differ
    panel = why_section(page_of(client.get(senior_url(senior))))
    assert f'id="why-tier">{t("No tier")}' in panel
    assert 'id="why-care">A' in panel
    assert "失能" in panel
    assert t("%(tier)s, care-visit class %(class)s") % {"tier": "低偿", "class": "A"} in panel
    # And the list shows "no tier" and the class, not "not determined"
    listing = page_of(client.get(LIST))
    card = listing[listing.index("李四") :]
    card = card[: card.index("</li>")]
    assert t("No tier") in card and t("Not determined") not in card


def test_with_no_policy_in_force_the_stored_tier_shows_and_no_manual_tier_can_be_set(
    client, city, monkeypatch
):
    monkeypatch.setattr(selectors, "policy_in_force", lambda *, as_of: None)
    signed_in(client, city.users["worker"])

    page = page_of(client.get(senior_url(city.seniors["张三"])))

    panel = why_section(page)
    assert 'id="why-tier">无偿' in panel and "三无/特困人员" in panel
    assert (
        t(
            "No policy is in force today: the rules cannot be checked against the facts of today, "
            "and no manual tier can be set."
        )
        in panel
    )
    assert 'id="set-tier-override"' not in page


# --- Manual tiers ---


def test_setting_a_manual_tier_shows_it_at_once_and_as_manual(client, city, seventy_eight):
    signed_in(client, city.users["worker"])

    response = client.post(set_url(seventy_eight), override_data())

    # Then the senior has the manual tier now, recorded with its reason and who set it
    assert response.status_code == 302 and response.url.endswith("#eligibility")
    override = TierOverride.objects.get(senior=seventy_eight)
    assert (override.tier_code, override.created_by) == ("low_fee", city.users["worker"])
    determination = current(seventy_eight)
    assert (determination.tier.code, determination.override_id) == ("low_fee", override.pk)
    # And the page shows it as a manual tier: reason, who, until when, and what the rules give
    page = page_of(client.get(senior_url(seventy_eight)))
    panel = why_section(page)
    assert 'id="why-tier">低偿' in panel and t("manually set") in panel
    assert "子女失业，家庭确有困难" in panel
    assert "陈丽" in panel and override.expires_on.isoformat() in panel
    assert t("Without it, the rules give: %(tier)s.") % {"tier": "有偿"} in panel
    assert t("in force") in manual_section(page)
    # And the list marks the tier as manual
    assert t("%(tier_name)s (manual)") % {"tier_name": "低偿"} in page_of(client.get(LIST))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"expires_on": "2020-01-01"}, "expires_on"),
        ({"expires_on": (timezone.localdate() + dt.timedelta(days=400)).isoformat()}, "expires_on"),
        ({"tier_code": "gold"}, "tier_code"),
    ],
)
def test_a_refused_manual_tier_is_marked_at_its_field_and_writes_nothing(
    client, city, seventy_eight, changes, field
):
    signed_in(client, city.users["worker"])
    before = current(seventy_eight)

    response = client.post(set_url(seventy_eight), override_data(**changes))

    assert response.status_code == 400
    errors = response.context["override_form"].errors
    assert list(errors) == [field]
    assert escape(errors[field][0]) in manual_section(page_of(response))
    assert not TierOverride.objects.filter(senior=seventy_eight).exists()
    assert current(seventy_eight).pk == before.pk


def test_ending_a_manual_tier_restores_the_rules_tier(client, city, seventy_eight):
    signed_in(client, city.users["worker"])
    client.post(set_url(seventy_eight), override_data())

    # A missing reason is refused at its field, and the manual tier stays
    refused = client.post(end_url(seventy_eight), {"end_reason": ""})
    assert refused.status_code == 400
    assert list(refused.context["end_form"].errors) == ["end_reason"]
    assert current(seventy_eight).tier.code == "low_fee"

    # With a reason it ends, and the rules decide again at once
    response = client.post(end_url(seventy_eight), {"end_reason": "家庭情况已好转"})

    assert response.status_code == 302
    determination = current(seventy_eight)
    assert (determination.tier.code, determination.override_id) == ("paid", None)
    override = TierOverride.objects.get(senior=seventy_eight)
    assert (override.ended_by, override.end_reason) == (city.users["worker"], "家庭情况已好转")
    page = page_of(client.get(senior_url(seventy_eight)))
    assert 'id="why-tier">有偿' in why_section(page) and t("manually set") not in why_section(page)
    history = manual_section(page)
    assert "家庭情况已好转" in history and t("ended") in history


def test_a_second_manual_tier_replaces_the_first_in_the_history(client, city, seventy_eight):
    signed_in(client, city.users["worker"])
    client.post(set_url(seventy_eight), override_data())

    client.post(set_url(seventy_eight), override_data(tier_code="subsidized", reason="重新核实"))

    assert current(seventy_eight).tier.code == "subsidized"
    history = manual_section(page_of(client.get(senior_url(seventy_eight))))
    assert t("replaced") in history and t("in force") in history
    assert history.index("重新核实") < history.index("子女失业")


def test_an_officer_sees_the_manual_tier_but_cannot_set_or_end_one(client, city, seventy_eight):
    # Given a manual tier set by the worker
    signed_in(client, city.users["worker"])
    client.post(set_url(seventy_eight), override_data())
    override = TierOverride.objects.get(senior=seventy_eight)

    # When the officer opens the page, they see it, with no form
    signed_in(client, city.users["officer"])
    page = page_of(client.get(senior_url(seventy_eight)))
    assert t("manually set") in why_section(page) and "子女失业，家庭确有困难" in page
    assert 'id="set-tier-override"' not in page and 'id="end-tier-override"' not in page

    # And a forged post is refused with 403 and changes nothing
    assert client.post(set_url(seventy_eight), override_data(tier_code="subsidized")).status_code == 403
    assert client.post(end_url(seventy_eight), {"end_reason": "试试"}).status_code == 403
    assert list(TierOverride.objects.filter(senior=seventy_eight)) == [override]
    override.refresh_from_db()
    assert override.ended_at is None and current(seventy_eight).tier.code == "low_fee"


def test_a_worker_of_another_community_gets_not_found(client, city, seventy_eight):
    signed_in(client, city.users["worker3"])

    assert client.post(set_url(seventy_eight), override_data()).status_code == 404
    assert not TierOverride.objects.exists()


def test_the_forms_have_stable_names_for_a_browser(client, city, seventy_eight):
    signed_in(client, city.users["worker"])
    client.post(set_url(seventy_eight), override_data())

    page = page_of(client.get(senior_url(seventy_eight)))

    assert 'id="set-tier-override"' in page and f'action="{set_url(seventy_eight)}#manual"' in page
    assert 'id="end-tier-override"' in page and f'action="{end_url(seventy_eight)}#manual"' in page
    for name in ("tier_code", "reason", "expires_on", "end_reason"):
        assert f'name="{name}"' in page


def test_a_senior_who_moved_out_has_no_why_and_gets_no_manual_tier(client, city, seventy_eight):
    # Given 孙八 moved out today (their determination is retired)
    change_senior_status(
        senior=seventy_eight, status="moved_away", on=timezone.localdate(), by=city.users["worker"]
    )
    signed_in(client, city.users["worker"])

    # Then their page has no rules, no nearest rule and no form to set a manual tier
    page = page_of(client.get(senior_url(seventy_eight)))
    assert 'id="why-tier"' not in page and 'id="nearest"' not in page
    assert 'id="set-tier-override"' not in page

    # And a post sets nothing
    response = client.post(set_url(seventy_eight), override_data())
    assert response.status_code == 302
    assert not TierOverride.objects.filter(senior=seventy_eight).exists()
