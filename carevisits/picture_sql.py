"""The month's care-visit figures in SQL: one statement per page, never a loop over seniors.

`senior_rows_sql` is the heart: one row per classed senior in a region subtree with what the
month asks of them (the standing rule of their class, raised by any temporary rule of their
region touching the month) and what was done (visits counted by the class's modes, refusals, the
last home visit within the class's longest interval). `picture_sql` groups those rows by
community, subdistrict or district; `due_list_sql` lists them, most overdue first.

The requirements are a handful of rows read before (`selectors.month_requirements`) and passed
in as VALUES, so the statement needs no date arithmetic of its own and reads the same on
PostgreSQL and SQLite. Every value is a parameter; only fixed fragments are formatted in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from config.months import next_month


@dataclass(frozen=True)
class ClassRule:
    """What one care-visit class asks in a month (the standing rule in force at its end)."""

    care_class: str
    visits: int
    modes: tuple[str, ...]
    interval_months: int
    home_since: dt.date  # the first day of the window that must hold a home visit


@dataclass(frozen=True)
class TemporaryRule:
    care_class: str
    region_path: str  # "" for the whole city
    visits: int


@dataclass(frozen=True)
class MonthRules:
    month: dt.date
    classes: dict[str, ClassRule]
    temporary: list[TemporaryRule]

    @property
    def window_start(self) -> dt.date:
        return min((rule.home_since for rule in self.classes.values()), default=self.month)


LEVEL_COLUMNS = {"community": "community_id", "subdistrict": "subdistrict_id", "district": "district_id"}
MODE_COLUMNS = ("home", "phone", "video", "remote")


def _values(rules: MonthRules) -> tuple[str, str, list]:
    """The VALUES lists of the class rules and of the temporary rules, and their parameters."""
    params: list = []
    rows = []
    for rule in rules.classes.values():
        rows.append("(%s, %s, %s, %s, %s, %s, %s)")
        params += [
            rule.care_class,
            rule.visits,
            *(1 if mode in rule.modes else 0 for mode in MODE_COLUMNS),
            rule.home_since,
        ]
    if not rows:  # no rule at all: no class is due anything (an empty VALUES is not SQL)
        rows.append("(%s, %s, %s, %s, %s, %s, %s)")
        params += ["", 0, 0, 0, 0, 0, rules.month]
    temporary = []
    for rule in rules.temporary:
        temporary.append("(%s, %s, %s)")
        params += [rule.care_class, rule.region_path + "%", rule.visits]
    if not temporary:
        temporary.append("(%s, %s, %s)")
        params += ["", "", 0]
    return ", ".join(rows), ", ".join(temporary), params


RAISED = """SELECT cl.senior_id, MAX(t.visits) AS visits
    FROM classed cl JOIN tmp t ON t.care_class = cl.care_class AND cl.path LIKE t.path_prefix
    GROUP BY cl.senior_id"""
IN_SCOPE = """AND v.senior_id IN (SELECT s2.id FROM eligibility_senior s2
        JOIN eligibility_region c2 ON c2.id = s2.community_id WHERE c2.path LIKE %s)"""


def senior_rows_sql(rules: MonthRules, *, scope_path: str, extra_where: str = "", extra_params=()):
    """(sql, params) of the CTEs ending in `per_senior`: one row per classed senior of the subtree
    `scope_path` ("" for the city) still there during the month (active, or left after it began)."""
    month = rules.month
    class_values, temporary_values, params = _values(rules)
    # Only with temporary rules does a senior's region matter beyond the scope (a rare month).
    path_column, raised = ", c.path AS path", RAISED
    if not rules.temporary:
        path_column, raised = "", "SELECT 0 AS senior_id, 0 AS visits WHERE 1 = 0"
    # The month's visits and open urgent findings of the scope's seniors: for the city all of
    # them (an index range), for a region those of its seniors (found by community).
    in_scope, scope_params = "", []
    if scope_path:
        in_scope = IN_SCOPE
        scope_params = [scope_path + "%"]
    sql = f"""
WITH req (care_class, visits, c_home, c_phone, c_video, c_remote, home_since) AS (VALUES {class_values}),
tmp (care_class, path_prefix, visits) AS (VALUES {temporary_values}),
classed AS (
    SELECT s.id AS senior_id, d.care_visit_class AS care_class, c.id AS community_id,
           c.parent_id AS subdistrict_id, sd.parent_id AS district_id{path_column}
    FROM eligibility_determination d
    JOIN eligibility_senior s ON s.id = d.senior_id
    JOIN eligibility_region c ON c.id = s.community_id
    JOIN eligibility_region sd ON sd.id = c.parent_id
    WHERE d.is_current = %s AND d.care_visit_class IN ('A', 'B', 'C')
      AND c.path LIKE %s
      AND (s.status = 'active' OR s.status_date >= %s)
      {extra_where}
),
done AS (
    SELECT v.senior_id,
        SUM(CASE WHEN v.outcome = 'visited' AND v.mode = 'home' THEN 1 ELSE 0 END) AS home,
        SUM(CASE WHEN v.outcome = 'visited' AND v.mode = 'phone' THEN 1 ELSE 0 END) AS phone,
        SUM(CASE WHEN v.outcome = 'visited' AND v.mode = 'video' THEN 1 ELSE 0 END) AS video,
        SUM(CASE WHEN v.outcome = 'visited' AND v.mode = 'remote' THEN 1 ELSE 0 END) AS remote,
        SUM(CASE WHEN v.outcome = 'declined' THEN 1 ELSE 0 END) AS declined,
        MAX(CASE WHEN v.outcome = 'visited' AND v.mode = 'home' THEN v.visited_on END) AS last_home,
        MAX(CASE WHEN v.outcome = 'visited' THEN v.visited_on END) AS last_visit
    FROM carevisits_visitrecord v
    WHERE v.visited_on >= %s AND v.visited_on < %s {in_scope}
    GROUP BY v.senior_id
),
home_before AS (
    -- Only classes whose interval reaches back before this month (B, C), only their home visits.
    SELECT v.senior_id, MAX(v.visited_on) AS last_home
    FROM classed cl
    JOIN req r ON r.care_class = cl.care_class AND r.home_since < %s
    JOIN carevisits_visitrecord v ON v.senior_id = cl.senior_id
    WHERE v.mode = 'home' AND v.outcome = 'visited' AND v.visited_on >= r.home_since AND v.visited_on < %s
    GROUP BY v.senior_id
),
urgent AS (
    SELECT v.senior_id, COUNT(*) AS open_urgent
    FROM carevisits_visitrecord v
    WHERE v.urgent = %s AND v.urgent_closed_at IS NULL AND v.visited_on < %s {in_scope}
    GROUP BY v.senior_id
),
raised AS ({raised}),
measured AS (
    SELECT cl.senior_id, cl.care_class, cl.community_id, cl.subdistrict_id, cl.district_id,
        CASE WHEN COALESCE(ra.visits, 0) > COALESCE(r.visits, 0) THEN ra.visits ELSE COALESCE(r.visits, 0) END
            AS required,
        COALESCE(dn.home * r.c_home + dn.phone * r.c_phone + dn.video * r.c_video + dn.remote * r.c_remote, 0)
            AS counted,
        COALESCE(dn.declined, 0) AS declined_records,
        CASE WHEN r.care_class IS NULL OR COALESCE(dn.last_home, hb.last_home) >= r.home_since THEN 0 ELSE 1 END
            AS home_overdue,
        COALESCE(dn.last_home, hb.last_home) AS last_home, dn.last_visit,
        COALESCE(u.open_urgent, 0) AS open_urgent
    FROM classed cl
    LEFT JOIN req r ON r.care_class = cl.care_class
    LEFT JOIN done dn ON dn.senior_id = cl.senior_id
    LEFT JOIN home_before hb ON hb.senior_id = cl.senior_id
    LEFT JOIN urgent u ON u.senior_id = cl.senior_id
    LEFT JOIN raised ra ON ra.senior_id = cl.senior_id
),
per_senior AS (
    SELECT m.*,
        CASE WHEN m.declined_records > 0 AND m.counted < m.required THEN 1 ELSE 0 END AS declined,
        CASE WHEN m.counted < m.required THEN m.counted ELSE m.required END AS done_capped
    FROM measured m
)"""  # noqa: S608 - fixed fragments; every value is a parameter
    params += [True, scope_path + "%", month, *extra_params]
    params += [month, next_month(month), *scope_params, month, month]
    params += [True, next_month(month), *scope_params]
    return sql, params


def picture_sql(rules: MonthRules, *, scope_path: str, level: str):
    """(sql, params): one row per region of `level` inside `scope_path` with classed seniors."""
    column = LEVEL_COLUMNS[level]
    head, params = senior_rows_sql(rules, scope_path=scope_path)
    sql = f"""{head}
SELECT g.id, g.code, g.name, g.name_en, g.path, x.*
FROM (
    SELECT p.{column} AS region_id,
        COUNT(*) AS seniors,
        SUM(CASE WHEN p.care_class = 'A' THEN 1 ELSE 0 END) AS class_a,
        SUM(CASE WHEN p.care_class = 'B' THEN 1 ELSE 0 END) AS class_b,
        SUM(CASE WHEN p.care_class = 'C' THEN 1 ELSE 0 END) AS class_c,
        SUM(CASE WHEN p.declined = 1 THEN 0 ELSE p.required END) AS due,
        SUM(CASE WHEN p.declined = 1 THEN 0 ELSE p.done_capped END) AS done,
        SUM(CASE WHEN p.declined = 0 AND p.counted >= p.required THEN 1 ELSE 0 END) AS met,
        SUM(CASE WHEN p.declined = 0 AND p.counted < p.required THEN 1 ELSE 0 END) AS missed,
        SUM(p.declined) AS declined,
        SUM(CASE WHEN p.declined = 0 THEN p.home_overdue ELSE 0 END) AS home_overdue,
        SUM(p.open_urgent) AS open_urgent,
        SUM(p.counted) AS visits_counted,
        COUNT(pr.id) AS paired,
        COUNT(DISTINCT pr.visitor_id) AS contact_workers,
        COUNT(DISTINCT pr.volunteer_id) AS contact_volunteers
    FROM per_senior p
    LEFT JOIN carevisits_pairing pr ON pr.senior_id = p.senior_id AND pr.ended_at IS NULL
    GROUP BY p.{column}
) x
JOIN eligibility_region g ON g.id = x.region_id
ORDER BY g.path"""  # noqa: S608 - the column is one of LEVEL_COLUMNS
    return sql, params


DUE_ORDER = """CASE WHEN p.declined = 1 THEN 4
         WHEN p.counted < p.required AND p.home_overdue = 1 THEN 0
         WHEN p.counted < p.required THEN 1
         WHEN p.home_overdue = 1 THEN 2
         ELSE 3 END"""


def due_list_sql(rules: MonthRules, *, scope_path: str, visitor_id: int | None, limit: int, offset: int):
    """(sql, params): the classed seniors of the subtree (only those paired with `visitor_id`
    when given), most overdue first: missed this month and no home visit within the interval,
    then missed, then home visit overdue, then done, then declined; within each, the longest
    since the last visit (never first)."""
    extra, extra_params = "", []
    if visitor_id is not None:
        extra = (
            "AND EXISTS (SELECT 1 FROM carevisits_pairing pr0 WHERE pr0.senior_id = s.id "
            "AND pr0.ended_at IS NULL AND pr0.visitor_id = %s)"
        )
        extra_params = [visitor_id]
    head, params = senior_rows_sql(rules, scope_path=scope_path, extra_where=extra, extra_params=extra_params)
    month = rules.month
    sql = f"""{head}
SELECT p.senior_id, p.care_class, p.required, p.counted, p.declined, p.home_overdue, p.last_home,
       p.last_any, p.open_urgent, p.urgency, COUNT(*) OVER () AS total
FROM (
    SELECT p.*, {DUE_ORDER} AS urgency,
        COALESCE(p.last_visit, (SELECT MAX(v.visited_on) FROM carevisits_visitrecord v
            WHERE v.senior_id = p.senior_id AND v.outcome = 'visited' AND v.visited_on >= %s
              AND v.visited_on < %s)) AS last_any
    FROM per_senior p
) p
ORDER BY p.urgency, p.last_any IS NOT NULL, p.last_any, p.senior_id
LIMIT %s OFFSET %s"""  # noqa: S608 - fixed fragments
    year_before = month.replace(year=month.year - 1)
    return sql, [*params, year_before, month, limit, offset]
