"""Reads of the care-visits app. `visible_to(user)` decides whom a user's visit work covers; every
page, export, API and the admin go through it (or, for the set-based figures, through
`scope_path`, the same subtree as SQL)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from carevisits import picture_sql
from carevisits.models import Pairing, VisitRecord, VisitRequirement, Volunteer
from config.months import first_day, last_day
from config.roles import REGION_ROLES, WORKER, roles_of
from eligibility import selectors as registry
from eligibility.models import Region, Senior

LEVEL_BELOW = {
    None: "district",
    "district": "subdistrict",
    "subdistrict": "community",
    "community": "community",
}


# --- Who may see and change what -----------------------------------------------------------------


def visible_to(user) -> QuerySet[Senior]:
    """The classed seniors (current determination with a care-visit class) whose visits a user may
    see: the registry's scope (a worker their community, an officer their subtree, the bureau the
    city), for users with the care-visit view permission; nobody else's."""
    if not user.is_authenticated or not user.has_perm("carevisits.view_visitrecord"):
        return Senior.objects.none()
    return registry.visible_to(user).filter(
        determinations__is_current=True, determinations__care_visit_class__in=["A", "B", "C"]
    )


def scope_path(user) -> str | None:
    """The subtree of `visible_to(user)` as a path prefix for SQL: "" for the whole city, None for
    nobody."""
    if not user.is_authenticated or not user.has_perm("carevisits.view_visitrecord"):
        return None
    if registry.sees_whole_city(user):
        return ""
    region = registry.scope_region(user)
    if region is None or not REGION_ROLES.intersection(roles_of(user)):
        return None
    return region.path


def visits_visible_to(user) -> QuerySet[VisitRecord]:
    return VisitRecord.objects.filter(senior__in=visible_to(user))


def can_record(user, senior: Senior) -> bool:
    """Whether a user may record visits of and pair this senior: a worker of their community (or
    the bureau), never an officer."""
    return user.has_perm("carevisits.add_visitrecord") and visible_to(user).filter(pk=senior.pk).exists()


def regions_for_picture(user) -> QuerySet[Region]:
    return registry.regions_visible_to(user) if scope_path(user) is not None else Region.objects.none()


# --- Requirements ---------------------------------------------------------------------------------


def _months_before(month: dt.date, months: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def standing_rules(*, on: dt.date) -> dict[str, VisitRequirement]:
    """The standing rule of each class in force on `on` (the database keeps to one)."""
    rules = (
        VisitRequirement.objects.filter(temporary=False, effective_from__lte=on)
        .filter(Q(effective_until__isnull=True) | Q(effective_until__gte=on))
        .order_by("care_visit_class", "-effective_from")
    )
    found: dict[str, VisitRequirement] = {}
    for rule in rules:
        found.setdefault(rule.care_visit_class, rule)
    return found


def month_requirements(month: dt.date) -> picture_sql.MonthRules:
    """What each class asks in `month`: the standing rule in force on its last day, and the
    temporary rules whose range touches it (a handful of rows)."""
    month = first_day(month)
    end = last_day(month)
    classes = {
        care_class: picture_sql.ClassRule(
            care_class=care_class,
            visits=rule.visits_per_month,
            modes=tuple(rule.counted_modes),
            interval_months=rule.home_interval_months,
            home_since=_months_before(month, rule.home_interval_months - 1),
        )
        for care_class, rule in standing_rules(on=end).items()
    }
    temporary = [
        picture_sql.TemporaryRule(
            care_class=rule.care_visit_class,
            region_path=rule.region.path if rule.region_id else "",
            visits=rule.visits_per_month,
        )
        for rule in VisitRequirement.objects.select_related("region").filter(
            temporary=True, effective_from__lte=end, effective_until__gte=month
        )
    ]
    return picture_sql.MonthRules(month=month, classes=classes, temporary=temporary)


def requirements_list() -> QuerySet[VisitRequirement]:
    return VisitRequirement.objects.select_related("region", "created_by").order_by(
        "temporary", "care_visit_class", "-effective_from"
    )


# --- The monthly picture ------------------------------------------------------------------------


@dataclass
class PictureRow:
    region_id: int | None
    code: str
    name: str
    name_en: str
    path: str
    seniors: int = 0
    class_a: int = 0
    class_b: int = 0
    class_c: int = 0
    due: int = 0
    done: int = 0
    met: int = 0
    missed: int = 0
    declined: int = 0
    home_overdue: int = 0
    open_urgent: int = 0
    visits_counted: int = 0
    paired: int = 0
    contact_workers: int = 0
    contact_volunteers: int = 0

    FIGURES = (
        "seniors",
        "class_a",
        "class_b",
        "class_c",
        "due",
        "done",
        "met",
        "missed",
        "declined",
        "home_overdue",
        "open_urgent",
        "visits_counted",
        "paired",
        "contact_workers",
        "contact_volunteers",
    )

    @property
    def rate(self) -> float | None:
        """Visits done over visits due (each senior's visits counted up to what was due), or None
        when nothing was due."""
        return self.done / self.due if self.due else None

    @property
    def rate_percent(self) -> str:
        return "—" if self.rate is None else f"{self.rate * 100:.1f}%"

    @property
    def contact_persons(self) -> int:
        return self.contact_workers + self.contact_volunteers

    @property
    def unpaired(self) -> int:
        return self.seniors - self.paired


@dataclass
class Picture:
    month: dt.date
    region: Region | None  # whose parts the rows are (None: the city)
    level: str
    rows: list[PictureRow]
    total: PictureRow
    rules: picture_sql.MonthRules = field(repr=False)


def monthly_picture(
    *, user, month: dt.date, region: Region | None = None, level: str | None = None
) -> Picture:
    """The month's figures per part of `region` (districts of the city, subdistricts of a
    district, communities of a subdistrict; a community's own row), within the user's scope, in
    one SQL statement (after the few requirement rows). `region` must be visible to the user
    (the caller looks it up through `regions_for_picture`); without it, the user's own region."""
    scope = scope_path(user)
    if region is None and scope:
        region = registry.scope_region(user)  # someone who does not see the city starts at their region
    return _picture(scope=scope, month=month, region=region, level=level)


def city_picture(*, month: dt.date, region: Region | None = None, level: str | None = None) -> Picture:
    """The same figures for the whole city or any region, for commands and jobs (no user)."""
    return _picture(scope="", month=month, region=region, level=level)


def _picture(*, scope: str | None, month: dt.date, region: Region | None, level: str | None) -> Picture:
    month = first_day(month)
    rules = month_requirements(month)
    level = level or LEVEL_BELOW[region.level if region else None]
    rows: list[PictureRow] = []
    if scope is not None:
        path = region.path if region else scope
        sql, params = picture_sql.picture_sql(rules, scope_path=path, level=level)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            names = [column[0] for column in cursor.description]
            for values in cursor.fetchall():
                data = dict(zip(names, values, strict=True))
                rows.append(
                    PictureRow(
                        region_id=data["id"],
                        code=data["code"],
                        name=data["name"],
                        name_en=data["name_en"],
                        path=data["path"],
                        **{name: int(data[name] or 0) for name in PictureRow.FIGURES},
                    )
                )
    total = PictureRow(
        None, region.code if region else "", _("Total"), "Total", region.path if region else ""
    )
    for row in rows:
        for name in PictureRow.FIGURES:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return Picture(month=month, region=region, level=level, rows=rows, total=total, rules=rules)


def statistics_picture(
    *, user=None, month: dt.date, region: Region | None = None
) -> tuple[Picture, dict[int, str]]:
    """The statistics table's figures: one row per community of the region (the user's scope; the
    city for no user: commands), and each community's subdistrict name."""
    if user is None:
        picture = city_picture(month=month, region=region, level="community")
    else:
        picture = monthly_picture(user=user, month=month, region=region, level="community")
    parents = dict(
        Region.objects.filter(pk__in=[row.region_id for row in picture.rows]).values_list(
            "pk", "parent__name"
        )
    )
    return picture, parents


# --- Who is due: "my visits" and a community's list ---------------------------------------------


@dataclass(frozen=True)
class DueSenior:
    senior: Senior
    care_class: str
    required: int
    counted: int
    declined: bool
    home_overdue: bool
    last_home: dt.date | None
    last_visit: dt.date | None
    open_urgent: int
    urgency: int  # 0 most overdue … 4 declined

    @property
    def state(self) -> str:
        return ("overdue", "due", "home_due", "done", "declined")[self.urgency]


@dataclass(frozen=True)
class DuePage:
    rows: list[DueSenior]
    total: int
    page: int
    per_page: int

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def _as_date(value) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])  # SQLite returns the text


def due_seniors(*, user, month: dt.date, mine: bool, page: int = 1, per_page: int = 50) -> DuePage:
    """The classed seniors the user may see (only those paired with them when `mine`), sorted by
    how overdue they are this month; one statement for the figures, one for the seniors shown."""
    scope = scope_path(user)
    if scope is None:
        return DuePage([], 0, 1, per_page)
    rules = month_requirements(month)
    sql, params = picture_sql.due_list_sql(
        rules,
        scope_path=scope,
        visitor_id=user.pk if mine else None,
        limit=per_page,
        offset=(max(page, 1) - 1) * per_page,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    seniors = Senior.objects.select_related("community").in_bulk([row[0] for row in fetched])
    rows = [
        DueSenior(
            senior=seniors[row[0]],
            care_class=row[1],
            required=int(row[2] or 0),
            counted=int(row[3] or 0),
            declined=bool(row[4]),
            home_overdue=bool(row[5]),
            last_home=_as_date(row[6]),
            last_visit=_as_date(row[7]),
            open_urgent=int(row[8] or 0),
            urgency=int(row[9]),
        )
        for row in fetched
    ]
    total = int(fetched[0][10]) if fetched else 0
    return DuePage(rows, total, max(page, 1), per_page)


# --- One senior -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmergencyContact:
    name: str
    relation: str
    phone: str
    from_registry: bool  # False: the community's contact stands in (no one registered)


def emergency_contact(senior: Senior) -> EmergencyContact | None:
    """The senior's emergency contact (紧急联系人) as the registry holds it (a child, else a close
    relative); with none registered, the community's contact person (the community worker)."""
    if senior.emergency_contact_name or senior.emergency_contact_phone:
        return EmergencyContact(
            senior.emergency_contact_name,
            senior.emergency_contact_relation,
            senior.emergency_contact_phone,
            True,
        )
    community = senior.community
    if community.contact_name or community.contact_phone:
        return EmergencyContact(community.contact_name, _("community worker"), community.contact_phone, False)
    return None


def current_pairing(*, senior: Senior) -> Pairing | None:
    return (
        Pairing.objects.select_related("visitor", "volunteer")
        .filter(senior=senior, ended_at__isnull=True)
        .first()
    )


def pairing_history(*, senior: Senior) -> QuerySet[Pairing]:
    return Pairing.objects.select_related("visitor", "volunteer", "assigned_by", "ended_by").filter(
        senior=senior
    )


def visits_of(*, senior: Senior, limit: int | None = None) -> list[VisitRecord]:
    records = VisitRecord.objects.select_related("recorded_by", "volunteer", "urgent_closed_by").filter(
        senior=senior
    )
    return list(records[:limit] if limit else records)


def care_class_of(senior: Senior) -> str:
    determination = registry.current_determination(senior=senior)
    return determination.care_visit_class if determination else ""


@dataclass(frozen=True)
class CareSummary:
    care_class: str
    rule: VisitRequirement | None
    pairing: Pairing | None
    emergency: EmergencyContact | None
    last_visit: VisitRecord | None


def care_summary(*, senior: Senior, today: dt.date | None = None) -> CareSummary | None:
    """The senior's class, the standing rule of it, contact person, emergency contact and last
    visit; None for a senior with no care-visit class."""
    from django.utils import timezone

    care_class = care_class_of(senior)
    if not care_class:
        return None
    today = today or timezone.localdate()
    return CareSummary(
        care_class=care_class,
        rule=standing_rules(on=today).get(care_class),
        pairing=current_pairing(senior=senior),
        emergency=emergency_contact(senior),
        last_visit=VisitRecord.objects.filter(senior=senior).order_by("-visited_at", "-id").first(),
    )


def contact_candidates(*, community: Region) -> QuerySet:
    """The users who may be a senior's contact person: active workers of the senior's community."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name=WORKER, region_scope__region=community)
        .order_by("first_name", "username")
    )


def volunteers_of(*, community: Region) -> QuerySet[Volunteer]:
    return Volunteer.objects.filter(community=community)


def open_urgent_findings(*, user, limit: int = 20) -> list[VisitRecord]:
    return list(
        visits_visible_to(user)
        .filter(urgent=True, urgent_closed_at__isnull=True)
        .select_related("senior__community", "recorded_by", "volunteer")
        .order_by("visited_at")[:limit]
    )


def visits_in_month(*, user, month: dt.date, region: Region | None = None) -> QuerySet[VisitRecord]:
    """The visit records of a month the user may see (of one region's subtree when given)."""
    month = first_day(month)
    records = visits_visible_to(user).filter(visited_on__gte=month, visited_on__lte=last_day(month))
    if region is not None:
        records = records.filter(senior__community__path__startswith=region.path)
    return records.select_related("senior__community__parent", "recorded_by", "volunteer").order_by(
        "senior__community__path", "senior_id", "visited_at"
    )
