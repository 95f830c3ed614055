"""Writes of the care-visits app: pairing a senior with a contact person, recording a visit (or a
refusal), closing an urgent finding, and the bureau's visit requirements.

Each public function is one transaction, checks who may do it (the registry's scope, through
`selectors.visible_to`) and raises `CareVisitError` with a stable code otherwise:
`not_found` (a senior outside the user's scope: they cannot tell it exists), `not_permitted`,
`not_classed`, `senior_not_active`, `not_a_worker`, `already_paired`, `visit_in_future`,
`not_urgent`, `already_closed`, `requirement_overlap`, `invalid_input`.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from carevisits import selectors
from carevisits.errors import CareVisitError
from carevisits.models import CHECKLIST, MODES, Pairing, Referral, VisitRecord, VisitRequirement, Volunteer
from config.months import local_date
from eligibility.models import Region, Senior, validate_phone

# A phone's clock may run a little ahead of the server's.
CLOCK_SKEW = dt.timedelta(minutes=10)
NOTE_MAX = 2000


def _senior_for(user, senior: Senior | int, *, write: bool) -> Senior:
    """The senior, locked when writing, if the user's care-visit work covers them.

    `not_found` for a senior outside the user's scope (they cannot even tell the senior exists);
    `not_classed` for one in scope with no care-visit class; `not_permitted` for a reader writing.
    """
    senior_id = senior.pk if isinstance(senior, Senior) else senior
    if not user.has_perm("carevisits.view_visitrecord"):
        raise CareVisitError(
            "not_permitted", _("Care visits are for community workers, officers and the bureau.")
        )
    seniors = Senior.objects.select_related("community")
    if write:
        seniors = seniors.select_for_update(of=("self",))
    found = seniors.filter(pk=senior_id, pk__in=selectors.registry.visible_to(user).values("pk")).first()
    if found is None:
        raise CareVisitError("not_found", _("No such senior in your area."))
    if not selectors.care_class_of(found):
        raise CareVisitError("not_classed", _("This senior has no care-visit class."))
    if write and not user.has_perm("carevisits.add_visitrecord"):
        raise CareVisitError("not_permitted", _("You can read care visits here but not record them."))
    return found


@transaction.atomic
def pair_contact(
    *,
    senior: Senior | int,
    by,
    visitor=None,
    volunteer: Volunteer | None = None,
    volunteer_name: str = "",
    volunteer_phone: str = "",
    starts_on: dt.date | None = None,
) -> Pairing:
    """Make `visitor` (a worker of the senior's community), an existing `volunteer` of the
    community, or a new volunteer (`volunteer_name` and `volunteer_phone`) the senior's contact
    person from `starts_on` (today). The current pairing ends in the same transaction, so the
    history is kept; the senior's row is locked so two workers pairing at once cannot both win.

    Refuses `not_found`, `not_permitted`, `not_a_worker` (a user who is not an active worker of
    the community), `already_paired` (the same contact person again), `invalid_input`.
    """
    senior = _senior_for(by, senior, write=True)
    if not by.has_perm("carevisits.add_pairing"):
        raise CareVisitError("not_permitted", _("You can read care visits here but not record them."))
    chosen = sum(bool(x) for x in (visitor, volunteer, volunteer_name or volunteer_phone))
    if chosen != 1:
        raise CareVisitError(
            "invalid_input", _("Choose one contact person: a worker, a volunteer, or a new volunteer.")
        )
    if (
        visitor is not None
        and not selectors.contact_candidates(community=senior.community).filter(pk=visitor.pk).exists()
    ):
        raise CareVisitError(
            "not_a_worker",
            _("%(name)s is not a community worker of %(community)s."),
            field="visitor",
            name=visitor.get_full_name() or visitor.get_username(),
            community=senior.community.name,
        )
    if volunteer is not None and volunteer.community_id != senior.community_id:
        raise CareVisitError(
            "invalid_input", _("This volunteer works in another community."), field="volunteer"
        )
    if volunteer is None and visitor is None:
        volunteer = _volunteer(community=senior.community, name=volunteer_name, phone=volunteer_phone, by=by)
    current = selectors.current_pairing(senior=senior)
    if (
        current is not None
        and current.visitor_id == (visitor.pk if visitor else None)
        and (current.volunteer_id == (volunteer.pk if volunteer else None))
    ):
        raise CareVisitError(
            "already_paired",
            _("%(name)s is already this senior's contact person."),
            name=current.contact_name,
        )
    now = timezone.now()
    if current is not None:
        current.ended_at, current.ended_by = now, by
        current.save(update_fields=["ended_at", "ended_by"])
    pairing = Pairing(
        senior=senior,
        visitor=visitor,
        volunteer=volunteer,
        starts_on=starts_on or local_date(now),
        assigned_by=by,
    )
    pairing.full_clean()
    pairing.save()
    return pairing


def _volunteer(*, community: Region, name: str, phone: str, by) -> Volunteer:
    name, phone = name.strip(), phone.strip()
    if not name:
        raise CareVisitError("invalid_input", _("Enter the volunteer's name."), field="volunteer_name")
    try:
        validate_phone(phone)
    except Exception as error:
        raise CareVisitError(
            "invalid_input",
            _("Enter a mobile number (11 digits) or an area code and number, e.g. 0571-87001234."),
            field="volunteer_phone",
        ) from error
    if not phone:
        raise CareVisitError("invalid_input", _("Enter the volunteer's phone."), field="volunteer_phone")
    volunteer, _created = Volunteer.objects.get_or_create(
        community=community, name=name, phone=phone, defaults={"created_by": by}
    )
    return volunteer


@transaction.atomic
def record_visit(
    *,
    senior: Senior | int,
    by,
    mode: str,
    visited_at: dt.datetime | None = None,
    outcome: str = VisitRecord.Outcome.VISITED,
    volunteer: Volunteer | None = None,
    notes: str = "",
    urgent: bool = False,
    referral: str = "",
    action_taken: str = "",
    follow_up_on: dt.date | None = None,
    source: str = "page",
    now: dt.datetime | None = None,
    **checklist: bool,
) -> VisitRecord:
    """Record one care visit, or a refusal of visits (`outcome="declined"`, with a note), of a
    classed senior the user may record for, at `visited_at` (now).

    Refuses `not_found`, `not_permitted`, `not_classed` (no care-visit class any more),
    `senior_not_active` (moved out or deceased before the visit), `visit_in_future`, and
    `invalid_input` with the field: an unknown mode, outcome or referral, a refusal without a
    note, an urgent situation without what was done, a follow-up date before the visit.
    """
    senior = _senior_for(by, senior, write=True)
    now = now or timezone.now()
    visited_at = visited_at or now
    if timezone.is_naive(visited_at):
        raise CareVisitError("invalid_input", _("Give the time with its time zone."), field="visited_at")
    if visited_at > now + CLOCK_SKEW:
        raise CareVisitError(
            "visit_in_future", _("A visit cannot be recorded ahead of time."), field="visited_at"
        )
    visited_on = local_date(visited_at)
    if senior.status != Senior.Status.ACTIVE and senior.status_date <= visited_on:
        raise CareVisitError(
            "senior_not_active",
            _("This senior is marked “%(status)s” since %(date)s."),
            status=senior.get_status_display(),
            date=senior.status_date.isoformat(),
        )
    if mode not in MODES:
        raise CareVisitError("invalid_input", _("Choose how the visit was made."), field="mode")
    if outcome not in VisitRecord.Outcome.values:
        raise CareVisitError("invalid_input", _("Choose whether the visit took place."), field="outcome")
    if referral not in Referral.values:
        raise CareVisitError("invalid_input", _("Choose whom it was referred to."), field="referral")
    unknown = set(checklist) - set(CHECKLIST)
    if unknown:
        raise CareVisitError("invalid_input", _("Unknown checklist item: %(name)s."), name=sorted(unknown)[0])
    notes, action_taken = notes.strip(), action_taken.strip()
    if len(notes) > NOTE_MAX:
        raise CareVisitError("invalid_input", _("Write at most 2,000 characters."), field="notes")
    declined = outcome == VisitRecord.Outcome.DECLINED
    if declined and not notes:
        raise CareVisitError(
            "invalid_input",
            _("Write down who declined the visits and why: the plan requires a written record."),
            field="notes",
        )
    if urgent and not (referral or action_taken):
        raise CareVisitError(
            "invalid_input",
            _("Say what was done about the urgent situation: whom it was referred to, or the action taken."),
            field="referral",
        )
    if follow_up_on is not None and follow_up_on < visited_on:
        raise CareVisitError(
            "invalid_input", _("The follow-up date cannot be before the visit."), field="follow_up_on"
        )
    if volunteer is not None and volunteer.community_id != senior.community_id:
        raise CareVisitError(
            "invalid_input", _("This volunteer works in another community."), field="volunteer"
        )
    record = VisitRecord(
        senior=senior,
        outcome=outcome,
        mode=mode,
        visited_at=visited_at,
        visited_on=visited_on,
        recorded_by=by,
        volunteer=volunteer,
        notes=notes,
        urgent=urgent and not declined,
        referral=referral,
        action_taken=action_taken,
        follow_up_on=follow_up_on,
        source=source,
        **{name: bool(checklist.get(name)) and not declined for name in CHECKLIST},
    )
    record.save()
    return record


@transaction.atomic
def close_urgent_finding(*, record: VisitRecord | int, by, now: dt.datetime | None = None) -> VisitRecord:
    """Mark an urgent finding dealt with (who, when); the record itself is kept as it was.

    Refuses `not_found`, `not_permitted`, `not_urgent`, `already_closed`."""
    record_id = record.pk if isinstance(record, VisitRecord) else record
    record = selectors.visits_visible_to(by).select_for_update(of=("self",)).filter(pk=record_id).first()
    if record is None:
        raise CareVisitError("not_found", _("No such visit record in your area."))
    if not by.has_perm("carevisits.change_visitrecord"):
        raise CareVisitError("not_permitted", _("You can read care visits here but not record them."))
    if not record.urgent:
        raise CareVisitError("not_urgent", _("This visit found nothing urgent."))
    if record.urgent_closed_at is not None:
        raise CareVisitError("already_closed", _("This urgent finding is already closed."))
    record.urgent_closed_at, record.urgent_closed_by = now or timezone.now(), by
    record.save(update_fields=["urgent_closed_at", "urgent_closed_by"])
    return record


@transaction.atomic
def ensure_default_requirements() -> int:
    """The standing rule of each class (DESIGN.md §4.4) where a class has none; migrate loads
    them, this puts them back (the demo, a flushed test database). Returns how many were made."""
    from carevisits.default_requirements import load

    return load(VisitRequirement)


def _require_bureau(by) -> None:
    if not (by.has_perm("carevisits.add_visitrequirement") and selectors.registry.sees_whole_city(by)):
        raise CareVisitError(
            "not_permitted", _("Visit requirements are set by a bureau administrator of the whole city.")
        )


@transaction.atomic
def add_temporary_requirement(
    *,
    care_visit_class: str,
    visits_per_month: int,
    effective_from: dt.date,
    effective_until: dt.date,
    by,
    region: Region | None = None,
    label: str = "",
) -> VisitRequirement:
    """A temporary rule (extreme weather, a festival): seniors of the class in `region` (the city)
    need at least `visits_per_month` visits in every month the range touches.

    Refuses `not_permitted` (not a city-wide bureau administrator) and `invalid_input`."""
    _require_bureau(by)
    if effective_until < effective_from:
        raise CareVisitError(
            "invalid_input", _("The end date cannot be before the start date."), field="effective_until"
        )
    rule = VisitRequirement(
        care_visit_class=care_visit_class,
        temporary=True,
        label=label.strip(),
        visits_per_month=visits_per_month,
        region=region,
        effective_from=effective_from,
        effective_until=effective_until,
        created_by=by,
    )
    _validated(rule)
    rule.save()
    return rule


@transaction.atomic
def set_standing_requirement(
    *,
    care_visit_class: str,
    visits_per_month: int,
    modes: list[str],
    home_interval_months: int,
    effective_from: dt.date,
    by,
    label: str = "",
) -> VisitRequirement:
    """A new standing rule of a class from `effective_from`; the rule in force then ends the day
    before (so every past month keeps the rule it was measured by).

    Refuses `not_permitted`, `requirement_overlap` (a standing rule of the class starts on or after
    that day) and `invalid_input`."""
    _require_bureau(by)
    later = VisitRequirement.objects.select_for_update().filter(
        temporary=False, care_visit_class=care_visit_class, effective_from__gte=effective_from
    )
    if later.exists():
        raise CareVisitError(
            "requirement_overlap",
            _("A rule of class %(class)s already starts on or after that day."),
            **{"class": care_visit_class},
        )
    VisitRequirement.objects.filter(
        temporary=False, care_visit_class=care_visit_class, effective_until__isnull=True
    ).update(effective_until=effective_from - dt.timedelta(days=1))
    if set(modes) - set(MODES) or not modes:
        raise CareVisitError("invalid_input", _("Choose the kinds of visit that count."), field="modes")
    rule = VisitRequirement(
        care_visit_class=care_visit_class,
        label=label.strip(),
        visits_per_month=visits_per_month,
        home_interval_months=home_interval_months,
        effective_from=effective_from,
        created_by=by,
        **{f"counts_{mode}": mode in modes for mode in MODES},
    )
    _validated(rule)
    rule.save()
    return rule


def _validated(rule: VisitRequirement) -> None:
    from django.core.exceptions import ValidationError

    try:
        rule.full_clean()
    except ValidationError as error:
        name, messages = next(iter(error.message_dict.items()))
        raise CareVisitError("invalid_input", messages[0], field=name) from error
    except IntegrityError as error:  # pragma: no cover - full_clean does not write
        raise CareVisitError("invalid_input", str(error)) from error
