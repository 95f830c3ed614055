"""The demo's care visits: every classed senior paired with a contact person (the `worker` login for
保俶社区, volunteers elsewhere), last month visited almost in full, this month under way, a refusal
and an open urgent finding, so that the `worker` login's "my visits" has seniors due and the
month's rate rises as they are visited.

Through the real services; idempotent (pairs only the unpaired, records only for a month without
demo visits). Random choices come from a generator seeded with a constant.
"""

import datetime as dt
import random

from carevisits import selectors, services
from carevisits.models import VisitRecord, Volunteer
from config.months import SHANGHAI, month_bounds
from eligibility.models import Senior

VOLUNTEERS = [("林志华", "13857100001"), ("黄美玲", "13857100002"), ("何建国", "13857100003")]
WORKER_COMMUNITY = "330106001001"
NOTES = [
    "精神状态良好，家中整洁",
    "血压偏高，已提醒按时服药",
    "冰箱食物不足，已联系助餐",
    "行动不便，需要助浴服务",
    "",
]


def _classed(seniors: list[Senior]) -> list[tuple[Senior, str]]:
    return [
        (senior, selectors.care_class_of(senior)) for senior in seniors if selectors.care_class_of(senior)
    ]


def _at(rng, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(rng.randint(9, 17), rng.choice([0, 15, 30, 45])), tzinfo=SHANGHAI)


def ensure_care_visits(*, seniors: list[Senior], users: dict, now: dt.datetime) -> dict[str, int]:
    worker, bureau = users["worker"], users["bureau"]
    services.ensure_default_requirements()
    classed = _classed(seniors)
    volunteers = {}
    for senior, _care_class in classed:
        if selectors.current_pairing(senior=senior) is not None:
            continue
        if senior.community.code == WORKER_COMMUNITY:
            services.pair_contact(senior=senior, by=worker, visitor=worker)
            continue
        index = senior.pk % len(VOLUNTEERS)
        key = (senior.community_id, index)
        if key not in volunteers:
            name, phone = VOLUNTEERS[index]
            volunteers[key] = Volunteer.objects.get_or_create(
                community=senior.community, name=name, phone=phone, defaults={"created_by": bureau}
            )[0]
        services.pair_contact(senior=senior, by=bureau, volunteer=volunteers[key])

    rng = random.Random(20251208)
    today = now.astimezone(SHANGHAI).date()
    this_month = today.replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    recorded = 0
    for month, share, until in (
        (last_month, 0.92, month_bounds(last_month)[1].date()),
        (this_month, 0.35, today),
    ):
        if VisitRecord.objects.filter(
            senior__in=[s for s, _c in classed], visited_on__gte=month, visited_on__lt=until
        ).exists():
            continue  # already recorded for this month by an earlier run
        days = max((until - month).days, 1)
        for number, (senior, care_class) in enumerate(classed):
            if rng.random() > share:
                continue
            pairing = selectors.current_pairing(senior=senior)
            by = worker if senior.community.code == WORKER_COMMUNITY else bureau
            day = month + dt.timedelta(days=rng.randrange(days))
            visited_at = min(_at(rng, day), now - dt.timedelta(minutes=5))
            declined = month == last_month and number == 3
            urgent = month == last_month and number == 5
            services.record_visit(
                senior=senior,
                by=by,
                volunteer=pairing.volunteer if pairing and pairing.volunteer_id else None,
                mode="home" if care_class == "A" or rng.random() < 0.3 else rng.choice(["phone", "video"]),
                outcome="declined" if declined else "visited",
                notes="本人表示子女每天照看，不需要探访" if declined else rng.choice(NOTES),
                visited_at=visited_at,
                health_problem=rng.random() < 0.15,
                needs_help=rng.random() < 0.2,
                safety_hazard=urgent,
                urgent=urgent,
                referral="medical" if urgent else "",
                action_taken="燃气泄漏，已通知家属和燃气公司" if urgent else "",
                follow_up_on=day + dt.timedelta(days=7) if urgent else None,
                now=now,
            )
            recorded += 1
    return {"classed": len(classed), "visits_recorded": recorded}
