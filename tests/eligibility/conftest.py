"""Fixtures for the policy tests: a fixed "now", the default policy, a bureau administrator and a
worker, and a registration helper that goes through `register_senior` as the registry does."""

import datetime as dt

import pytest

from config.months import SHANGHAI
from config.roles import BUREAU, WORKER, setup_roles
from eligibility.models import Policy, Region, Senior
from eligibility.services import ensure_default_policy, register_senior
from tests.e2e.conftest import make_user
from tests.factories import make_community, make_id_card_number

# The middle of November 2026 in Shanghai: next month starts on 1 December.
NOW = dt.datetime(2026, 11, 16, 10, 0, tzinfo=SHANGHAI)
TODAY = dt.date(2026, 11, 16)
NEXT_MONTH = dt.date(2026, 12, 1)


def born_aged(years: int, on: dt.date = NEXT_MONTH) -> dt.date:
    """A birth date that makes someone exactly `years` old on `on` (their birthday a month before)."""
    day = on - dt.timedelta(days=30)
    return day.replace(year=day.year - years)


@pytest.fixture
def now(monkeypatch) -> dt.datetime:
    """Freeze the clock at NOW (the services read `timezone.now()` for "today")."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return NOW


@pytest.fixture
def default_policy(db) -> Policy:
    # A transactional test before this one may have flushed the migration's rows
    setup_roles()
    return ensure_default_policy()


@pytest.fixture
def bureau(default_policy):
    return make_user("bureau-admin", BUREAU)


@pytest.fixture
def worker(default_policy):
    return make_user("community-worker", WORKER)


@pytest.fixture
def community(db) -> Region:
    return make_community("P")


@pytest.fixture
def register(default_policy, community, now):
    """register(born, **facts): a senior registered (and so evaluated today) like a worker does."""

    def register_one(born: dt.date = dt.date(1950, 1, 1), *, where: Region | None = None, **facts) -> Senior:
        return register_senior(
            id_card_number=make_id_card_number(birth_date=born),
            name="测试老人",
            community=where or community,
            status_date=dt.date(2020, 1, 1),
            **facts,
        )

    return register_one
