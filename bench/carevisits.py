#!/usr/bin/env python
"""The month's care-visit picture of a whole city and its statistics table, against bare SQL.

Usage (PostgreSQL only; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/carevisits.py --seniors 2000000 --classed 300000 --repeats 3

It creates a throwaway database (`homecare_bench_carevisits`; dropped first if it exists and again
at the end unless --keep), migrates it, COPYs N generated seniors into the registry (bench/city.py,
as bench/evaluate.py does), gives `--classed` of them, spread over the city, a current
determination of care-visit class A, B or C (40/30/30 %), pairs each with a volunteer of their
community and writes a year of visits by SQL (about one a month each: A at home, B and C mostly
by phone with a home visit every 6 or 12 months, some missed, some refused, a few urgent).
Then, R times each, alternating the order:

- `page`: the bureau's `GET /visits/?month=…` through Django's test client (the whole city by
  district: the requirements, the one picture statement, the open urgent findings, the template);
- `picture`: `selectors.city_picture` alone (the statement and its rows);
- `bare`: the least those figures can cost: one hand-written statement counting, per district,
  the classed seniors and the month's visits (no requirements, modes, intervals, refusals or
  pairings);
- `statistics`: the statistics table (情况统计表) of the city, one row per community, written to
  a workbook (`statistics_picture` + `exports.write_statistics`).

`--seniors 50000 --classed 10000` gives a quick run; `--keep` leaves the database and `--reuse`
runs on it again.
"""

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.evaluate import admin_statements, build_city, on_a_throwaway_city, settle  # noqa: E402
from bench.postgres import connect, database_url, server_config, show  # noqa: E402

MONTH = dt.date(2026, 12, 1)  # the month measured; visits run from a year before to its 20th
FIRST = dt.date(2025, 12, 1)
WHY = "bench/carevisits.py measures set-based SQL on PostgreSQL"
TARGETS = {"page": 2.0, "statistics": 30.0}

BARE = """
SELECT sd.parent_id AS district_id, COUNT(*) AS seniors, SUM(COALESCE(v.visits, 0)) AS visits
FROM eligibility_determination d
JOIN eligibility_senior s ON s.id = d.senior_id
JOIN eligibility_region c ON c.id = s.community_id
JOIN eligibility_region sd ON sd.id = c.parent_id
LEFT JOIN (
    SELECT senior_id, COUNT(*) AS visits FROM carevisits_visitrecord
    WHERE visited_on >= %(start)s AND visited_on < %(end)s GROUP BY senior_id
) v ON v.senior_id = s.id
WHERE d.is_current AND d.care_visit_class IN ('A', 'B', 'C') AND s.status = 'active'
GROUP BY sd.parent_id
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seniors", type=int, default=2_000_000)
    parser.add_argument("--classed", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db-name", default="homecare_bench_carevisits")
    parser.add_argument("--keep", action="store_true", help="leave the database for --reuse")
    parser.add_argument("--reuse", action="store_true", help="use the database a --keep run left")
    args = parser.parse_args(argv)
    if args.seniors < 1 or args.repeats < 1 or not 0 < args.classed <= args.seniors:
        parser.error("--seniors and --repeats must be at least 1, --classed between 1 and --seniors")
    return args


def load_visits(config: dict, db_name: str, classed: int, seniors: int) -> dict:
    """Determinations, volunteers, pairings and a year of visits, by a few INSERT … SELECTs."""
    from django.contrib.auth import get_user_model

    from eligibility.models import Policy, Tier

    policy_id = (
        Policy.objects.exclude(status="draft").order_by("-effective_from").values_list("id", flat=True)[0]
    )
    tier_id = Tier.objects.get(policy_id=policy_id, code="paid").pk
    user = get_user_model().objects.create(username="bench-worker")
    step = max(seniors // classed, 1)
    started = time.perf_counter()
    statements = [
        "TRUNCATE eligibility_determination CASCADE",
        # Every senior has a current determination (a tier); `classed` of them, spread over the
        # city, also a care-visit class.
        f"""INSERT INTO eligibility_determination
            (senior_id, policy_id, tier_id, care_visit_class, matched_rules, as_of, is_current, determined_at,
             determined_by_job)
            SELECT id, {policy_id}, {tier_id},
                   CASE WHEN id % {step} <> 0 OR id / {step} > {classed} THEN ''
                        WHEN (id / {step}) % 10 < 4 THEN 'A' WHEN (id / {step}) % 10 < 7 THEN 'B' ELSE 'C' END,
                   '[]'::jsonb, DATE '2025-12-01', TRUE, now(), 'bench'
            FROM eligibility_senior""",
        f"""INSERT INTO carevisits_volunteer (name, phone, community_id, created_at, created_by_id)
            SELECT '志愿者' || id, '1385710' || lpad((id % 10000)::text, 4, '0'), id, now(), {user.pk}
            FROM eligibility_region WHERE level = 'community'""",
        f"""INSERT INTO carevisits_pairing (senior_id, volunteer_id, starts_on, assigned_at, assigned_by_id)
            SELECT d.senior_id, v.id, DATE '2025-12-01', now(), {user.pk}
            FROM eligibility_determination d JOIN eligibility_senior s ON s.id = d.senior_id
            JOIN carevisits_volunteer v ON v.community_id = s.community_id
            WHERE d.care_visit_class <> ''""",
        # One row per classed senior and month; about 7 % missed, 1 % refused, 0.2 % urgent.
        f"""INSERT INTO carevisits_visitrecord
            (senior_id, outcome, mode, visited_at, visited_on, recorded_by_id, volunteer_id, recorded_at,
             living_problem, health_problem, safety_hazard, needs_help, notes, urgent, referral,
             action_taken, source)
            SELECT p.senior_id,
                   CASE WHEN (p.id + m.n) % 100 = 0 THEN 'declined' ELSE 'visited' END,
                   CASE WHEN d.care_visit_class = 'A' THEN 'home'
                        WHEN d.care_visit_class = 'B' AND (p.id + m.n) % 6 = 0 THEN 'home'
                        WHEN d.care_visit_class = 'C' AND (p.id + m.n) % 12 = 0 THEN 'home'
                        WHEN (p.id + m.n) % 3 = 0 THEN 'video' ELSE 'phone' END,
                   (m.day + ((p.id * 7 + m.n) % 20) * INTERVAL '1 day' + INTERVAL '9 hours') AT TIME ZONE 'Asia/Shanghai',
                   (m.day + ((p.id * 7 + m.n) % 20) * INTERVAL '1 day')::date,
                   {user.pk}, p.volunteer_id, now(),
                   FALSE, (p.id % 9 = 0), FALSE, (p.id % 5 = 0),
                   CASE WHEN (p.id + m.n) % 100 = 0 THEN '本人拒绝' ELSE '' END,
                   (p.id + m.n) % 500 = 7, CASE WHEN (p.id + m.n) % 500 = 7 THEN 'medical' ELSE '' END,
                   '', 'bench'
            FROM carevisits_pairing p
            JOIN eligibility_determination d ON d.senior_id = p.senior_id AND d.is_current
            CROSS JOIN (SELECT n, (DATE '{FIRST}' + n * INTERVAL '1 month')::date AS day
                        FROM generate_series(0, 12) AS n) m
            WHERE (p.id * 13 + m.n) % 100 >= 7""",
        "VACUUM ANALYZE eligibility_determination",
        "VACUUM ANALYZE carevisits_pairing",
        "VACUUM ANALYZE carevisits_visitrecord",
    ]
    admin_statements(config, db_name, *statements)
    conn = connect(config, db_name)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM carevisits_visitrecord")
            visits = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM eligibility_determination WHERE care_visit_class <> ''")
            determinations = cursor.fetchone()[0]
    finally:
        conn.close()
    return {"visits": visits, "classed": determinations, "seconds": time.perf_counter() - started}


def run_page(client) -> dict:
    from django.conf import settings
    from django.test.utils import override_settings

    # No collectstatic here: the page names its static files without the manifest's hashes.
    plain = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=plain):
        started = time.perf_counter()
        response = client.get(f"/visits/?month={MONTH:%Y-%m}")
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        sys.exit(f"the page answered {response.status_code}")
    return {"seconds": seconds}


def run_picture() -> dict:
    from carevisits.selectors import city_picture

    started = time.perf_counter()
    picture = city_picture(month=MONTH)
    return {"seconds": time.perf_counter() - started, "total": picture.total}


def run_bare(config: dict, db_name: str) -> dict:
    conn = connect(config, db_name)
    try:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute(BARE, {"start": MONTH, "end": dt.date(2027, 1, 1)})
            rows = cursor.fetchall()
        return {"seconds": time.perf_counter() - started, "seniors": sum(row[1] for row in rows)}
    finally:
        conn.close()


def run_statistics() -> dict:
    from carevisits import exports
    from carevisits.selectors import statistics_picture

    started = time.perf_counter()
    picture, parents = statistics_picture(month=MONTH)
    with tempfile.TemporaryFile() as out:
        rows = exports.write_statistics(picture=picture, out=out, parents=parents)
    return {"seconds": time.perf_counter() - started, "rows": rows}


def measure(args, config: dict, url: str, *, reuse: bool) -> None:
    began = build_city(args, config, url, reuse=reuse)
    import django
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    from config.roles import BUREAU, setup_roles

    if began is not None:
        print(f"built {args.db_name}: {args.seniors} seniors by COPY in {time.perf_counter() - began:.0f} s")
        loaded = load_visits(config, args.db_name, args.classed, args.seniors)
        print(
            f"loaded {loaded['classed']} classed seniors, their pairings and {loaded['visits']} visits "
            f"in {loaded['seconds']:.0f} s"
        )
    connections.close_all()
    server_version, work_mem = show(config, args.db_name, "server_version", "work_mem")
    print(
        f"PostgreSQL {server_version} (work_mem {work_mem}), Python {platform.python_version()}, "
        f"Django {django.get_version()}; month {MONTH:%Y-%m}; {args.repeats} runs of each kind, alternating"
    )
    setup_roles()
    bureau, _ = get_user_model().objects.get_or_create(username="bench-bureau")
    from django.contrib.auth.models import Group

    bureau.groups.add(Group.objects.get(name=BUREAU))
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans", SERVER_NAME="localhost")
    client.force_login(bureau)

    kinds = {
        "page": lambda: run_page(client),
        "picture": run_picture,
        "bare": lambda: run_bare(config, args.db_name),
        "statistics": run_statistics,
    }
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    order = list(kinds)
    for r in range(args.repeats):
        for kind in order if r % 2 == 0 else list(reversed(order)):
            settle(config, args.db_name)
            result = kinds[kind]()
            results[kind].append(result)
            print(f"  run {r + 1}/{args.repeats} {kind:10s} {result['seconds']:8.2f} s")
    total = results["picture"][0]["total"]
    if total.seniors != results["bare"][0]["seniors"]:
        sys.exit(
            f"the picture counts {total.seniors} classed seniors, the bare SQL {results['bare'][0]['seniors']}"
        )
    print(
        f"\nthe city in {MONTH:%Y-%m}: {total.seniors} classed seniors (A {total.class_a}, B {total.class_b}, "
        f"C {total.class_c}), {total.done} of {total.due} visits due ({total.rate_percent}), "
        f"{total.declined} declined, {total.home_overdue} home visits overdue, {total.open_urgent} urgent open"
    )
    print("\nmedians:")
    medians = {kind: statistics.median(r["seconds"] for r in runs) for kind, runs in results.items()}
    for kind, seconds in medians.items():
        target = TARGETS.get(kind)
        verdict = (
            ""
            if target is None
            else f"  (target < {target:.0f} s: {'met' if seconds < target else 'MISSED'})"
        )
        print(f"  {kind:10s} {seconds:8.2f} s{verdict}")
    print(f"  picture / bare: {medians['picture'] / medians['bare']:.2f}")


def main() -> None:
    args = parse_args()
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")  # the page is requested through the test client
    url = database_url("bench/carevisits.py")
    config = server_config(url, why=WHY)
    on_a_throwaway_city(args, config, url, measure)


if __name__ == "__main__":
    main()
