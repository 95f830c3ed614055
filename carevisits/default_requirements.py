"""The visit requirements of the special-difficulty visiting programme (DESIGN.md §4.4), as the data
a fresh install starts from (migration 0002 and `services.ensure_default_requirements`). Pure data."""

import datetime as dt

# class, visits a month, modes that count, longest interval between home visits (months), label
DEFAULTS = [
    ("A", 1, ("home",), 1, "A类：每月至少入户探访1次"),
    ("B", 1, ("home", "phone", "video", "remote"), 6, "B类：每月至少探访1次，每半年至少入户1次"),
    ("C", 1, ("home", "phone", "video", "remote"), 12, "C类：每月至少探访1次，每年至少入户1次"),
]
SINCE = dt.date(2020, 1, 1)
MODES = ("home", "phone", "video", "remote")


def load(requirement_model) -> int:
    """Create the standing rule of each class that has none (any model class: a migration passes
    its historical one); returns how many were created."""
    created = 0
    for care_class, visits, modes, interval, label in DEFAULTS:
        if requirement_model.objects.filter(care_visit_class=care_class, temporary=False).exists():
            continue
        requirement_model.objects.create(
            care_visit_class=care_class,
            label=label,
            visits_per_month=visits,
            home_interval_months=interval,
            effective_from=SINCE,
            **{f"counts_{mode}": mode in modes for mode in MODES},
        )
        created += 1
    return created
