"""A small city for the care-visit tests: two communities of one subdistrict and one of another
district, a worker in each of the first two, an officer of the subdistrict and the bureau; seniors
registered through the registry's service (so the default policy gives them their class)."""

import datetime as dt
from dataclasses import dataclass

import pytest

from carevisits.services import ensure_default_requirements
from config.months import SHANGHAI
from config.roles import BUREAU, OFFICER, WORKER, setup_roles
from eligibility.models import Region, Senior
from eligibility.services import ensure_default_policy, register_senior
from tests.e2e.conftest import make_user
from tests.factories import RegionFactory, make_id_card_number

NOW = dt.datetime(2026, 11, 16, 10, 0, tzinfo=SHANGHAI)
TODAY = NOW.date()
MONTH = dt.date(2026, 11, 1)

# The facts that give each care-visit class under the default policy (DESIGN.md §4.4).
CLASS_FACTS = {
    "A": {"self_care": "disabled", "living_arrangement": "alone", "children_in_city": False},
    "B": {"self_care": "partial", "severely_disabled": True, "living_arrangement": "alone"},
    "C": {"special_difficulty": True},
    "": {},
}
_serial = iter(range(100, 10_000))


@dataclass
class World:
    district: Region
    subdistrict: Region
    c1: Region
    c2: Region
    other_district: Region
    c3: Region
    bureau: object
    officer: object
    worker1: object
    worker2: object
    worker3: object

    def senior(
        self, care_class: str, community: Region | None = None, born=dt.date(1950, 5, 1), **facts
    ) -> Senior:
        """A senior of `care_class` ("" for none) registered in `community` (c1)."""
        return register_senior(
            id_card_number=make_id_card_number(birth_date=born, serial=next(_serial)),
            name="探访老人",
            community=community or self.c1,
            status_date=dt.date(2020, 1, 1),
            emergency_contact_name="王小明",
            emergency_contact_relation="儿子",
            emergency_contact_phone="13900001111",
            **{**CLASS_FACTS[care_class], **facts},
        )


@pytest.fixture
def now(monkeypatch) -> dt.datetime:
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return NOW


def build_world() -> World:
    setup_roles()  # a transactional test before may have flushed the migration's groups
    ensure_default_policy()
    ensure_default_requirements()  # as setup_roles: the migration's rows may have been flushed
    district = RegionFactory(code="330106", name="西湖区", level=Region.Level.DISTRICT)
    subdistrict = RegionFactory(
        code="330106001", name="北山街道", level=Region.Level.SUBDISTRICT, parent=district
    )
    c1 = RegionFactory(code="330106001001", name="保俶社区", level=Region.Level.COMMUNITY, parent=subdistrict)
    c2 = RegionFactory(code="330106001002", name="宝石社区", level=Region.Level.COMMUNITY, parent=subdistrict)
    other = RegionFactory(code="330102", name="上城区", level=Region.Level.DISTRICT)
    s3 = RegionFactory(code="330102001", name="湖滨街道", level=Region.Level.SUBDISTRICT, parent=other)
    c3 = RegionFactory(code="330102001001", name="东坡社区", level=Region.Level.COMMUNITY, parent=s3)
    return World(
        district=district,
        subdistrict=subdistrict,
        c1=c1,
        c2=c2,
        other_district=other,
        c3=c3,
        bureau=make_user("bureau", BUREAU, first_name="王局"),
        officer=make_user("officer", OFFICER, region=subdistrict, first_name="郑科长"),
        worker1=make_user("worker", WORKER, region=c1, first_name="陈丽"),
        worker2=make_user("worker2", WORKER, region=c2, first_name="周萍"),
        worker3=make_user("worker3", WORKER, region=c3, first_name="吴海"),
    )


@pytest.fixture
def world(db, now) -> World:
    return build_world()
