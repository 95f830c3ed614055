"""Reads of the eligibility app."""

import contextlib
import datetime as dt
import logging
import re
import unicodedata

from django.core.cache import cache
from django.db.models import F, FilteredRelation, Q, QuerySet, Value
from django.db.models.functions import Replace

from config.roles import BUREAU, REGION_ROLES, roles_of
from eligibility.errors import EligibilityError
from eligibility.models import Determination, ImportJob, Policy, Region, RegionScope, Senior
from eligibility.normalise import normalise_id_card_number, normalise_text


def policy_in_force(*, as_of: dt.date) -> Policy | None:
    """The policy effective on `as_of`; the latest version wins when several are."""
    return (
        Policy.objects.filter(effective_from__lte=as_of)
        .filter(Q(effective_until__isnull=True) | Q(effective_until__gte=as_of))
        .order_by("-effective_from", "-version")
        .first()
    )


def current_determination(*, senior) -> Determination | None:
    return (
        Determination.objects.select_related("tier", "policy").filter(senior=senior, is_current=True).first()
    )


# --- Who may see and change what (DESIGN.md §8) ---------------------------------------------------


def scope_region(user) -> Region | None:
    """The region a user works in (eligibility.RegionScope), read once per user object."""
    if not user.is_authenticated:
        return None
    if not hasattr(user, "_region_scope"):
        scope = RegionScope.objects.select_related("region").filter(user=user).first()
        user._region_scope = scope.region if scope else None
    return user._region_scope


def sees_whole_city(user) -> bool:
    """Superusers, and bureau administrators with no narrower region set."""
    return user.is_superuser or (BUREAU in roles_of(user) and scope_region(user) is None)


def regions_visible_to(user) -> QuerySet[Region]:
    """The regions a user's registry work covers: all for the city, else their scope's subtree."""
    if not user.is_authenticated:
        return Region.objects.none()
    if sees_whole_city(user):
        return Region.objects.all()
    region = scope_region(user)
    if region is None or not REGION_ROLES.intersection(roles_of(user)):
        return Region.objects.none()
    return Region.objects.filter(path__startswith=region.path)


def communities_visible_to(user) -> QuerySet[Region]:
    return regions_visible_to(user).filter(level=Region.Level.COMMUNITY).order_by("path")


def visible_to(user) -> QuerySet[Senior]:
    """The seniors a user may see: the one decision every page, export, API and admin uses.

    The bureau sees the city; an officer their subdistrict or district; a worker their community;
    everyone else (providers, staff, finance) no registry at all: a scanner sees a voucher's
    masked name through the vouchers app instead.
    """
    if not user.is_authenticated or not user.has_perm("eligibility.view_senior"):
        return Senior.objects.none()
    if sees_whole_city(user):
        return Senior.objects.all()
    region = scope_region(user)
    if region is None or not REGION_ROLES.intersection(roles_of(user)):
        return Senior.objects.none()
    return Senior.objects.filter(community__path__startswith=region.path)


def can_register_in(user, community: Region) -> bool:
    """Whether a user may register (or import) seniors into a community: bureau and workers."""
    return (
        user.has_perm("eligibility.add_senior") and regions_visible_to(user).filter(pk=community.pk).exists()
    )


def can_change(user, senior: Senior) -> bool:
    """Whether a user may edit this senior: the change permission (officers are read-only)
    and the senior inside their scope."""
    return user.has_perm("eligibility.change_senior") and visible_to(user).filter(pk=senior.pk).exists()


def may_see_full_id_card_number(user) -> bool:
    return user.has_perm("eligibility.view_full_id_card_number")


# --- Registry imports (eligibility.importer; started by services.start_import) -----------------

_import_log = logging.getLogger("eligibility.import")
FINISHED_IMPORT_STATES = (ImportJob.State.DONE, ImportJob.State.CHECKED, ImportJob.State.FAILED)


def import_progress_key(job_id: int) -> str:
    """The cache key under which a running import keeps (rows done, rows in all)."""
    return f"eligibility:import-progress:{job_id}"


def import_progress(*, job: ImportJob) -> tuple[int, int]:
    """(rows done, rows in all) of an import, for the page's progress bar.

    A finished job is complete. A queued or running one shows what its worker last put in the
    cache; with no figure there yet, or the cache failing (Redis down), it shows 0 of the rows
    counted at upload rather than an error.
    """
    if job.state in FINISHED_IMPORT_STATES:
        return job.total_rows, job.total_rows
    try:
        value = cache.get(import_progress_key(job.pk))
    except Exception:  # any cache failure: the bar waits, the import goes on
        _import_log.warning("import %s: progress could not be read from the cache", job.pk, exc_info=True)
        value = None
    if not value:
        return 0, job.total_rows
    done, total = value
    return min(done, total), total


def import_jobs_visible_to(user) -> QuerySet[ImportJob]:
    """The imports a user may see, newest first, without their workbooks (deferred: they are
    large): the whole city's for those who see the whole city, else their own uploads."""
    if not user.is_authenticated or not user.has_perm("eligibility.view_importjob"):
        return ImportJob.objects.none()
    jobs = ImportJob.objects.defer("workbook", "annotated_workbook").select_related("created_by")
    if sees_whole_city(user):
        return jobs.order_by("-created_at")
    return jobs.filter(created_by=user).order_by("-created_at")


# --- The registry's search ------------------------------------------------------------------------

ID_CARD_TAIL = re.compile(r"^[0-9]{3}[0-9X]$")
FULL_ID_CARD = re.compile(r"^([0-9]{17}[0-9X]|[0-9]{15})$")
MIN_PHONE_DIGITS = 4


def typed_query(raw: str) -> str:
    """What was typed, with full-width letters and digits (a Chinese keyboard's) as ASCII."""
    return normalise_text(unicodedata.normalize("NFKC", raw or ""))


def search(seniors: QuerySet[Senior], query: str) -> QuerySet[Senior]:
    """Seniors matching a typed query, by what it looks like:

    a whole ID-card number → that person; 3 digits and a digit or X → the ID-card number's last 4;
    4 or more digits → a phone number ending so (the whole number too, dashes ignored);
    Latin letters → pinyin initials (`zs` finds 张三, a prefix of any reading of the surname);
    anything else → part of the name.
    """
    text = typed_query(query)
    if not text:
        return seniors
    compact = text.replace(" ", "").replace("-", "").upper()
    matches = Q(pk__in=[])
    if FULL_ID_CARD.match(compact):
        # Not a valid number: it may still be the end of a phone number.
        with contextlib.suppress(EligibilityError):
            matches |= Q(id_card_number=normalise_id_card_number(compact))
    if ID_CARD_TAIL.match(compact):
        matches |= Q(id_card_number__endswith=compact)
    if compact.isdigit() and len(compact) >= MIN_PHONE_DIGITS:
        seniors = seniors.annotate(phone_digits=Replace(F("phone"), Value("-"), Value("")))
        matches |= Q(phone_digits__endswith=compact)
    if compact.isascii() and compact.isalpha():
        matches |= Q(name_initials__contains=" " + compact.lower())
    elif not compact.isdigit():
        matches |= Q(name__contains=text)
    return seniors.filter(matches)


def with_current_determination(seniors: QuerySet[Senior]) -> QuerySet[Senior]:
    """Each senior with their current tier (code, names) and care-visit class, by one LEFT JOIN
    on the current determination (the database keeps it to one row per senior)."""
    return seniors.annotate(
        current=FilteredRelation("determinations", condition=Q(determinations__is_current=True)),
        current_tier_code=F("current__tier__code"),
        current_tier_name=F("current__tier__name"),
        current_tier_name_en=F("current__tier__name_en"),
        current_care_class=F("current__care_visit_class"),
    )
