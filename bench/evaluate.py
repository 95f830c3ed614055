#!/usr/bin/env python
"""Eligibility evaluation of a whole city: the rule engine against bare hand-written SQL, same run.

Usage (PostgreSQL only; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/evaluate.py --seniors 2000000 --repeats 3

It creates a throwaway database (`homecare_bench_evaluate` by default; dropped first if it exists
and dropped again at the end), migrates it (the data migration loads the default policy), builds
a synthetic city's regions and COPYs N generated seniors into the registry (bench/city.py), and
makes a draft of the default policy that lowers the low-fee age from 80 to 75. Then three
comparisons, each R times of each kind, alternating the order:

- first evaluation (no determinations; the table is truncated before every run):
  `services.evaluate_eligibility` against one hand-written `INSERT … SELECT CASE …`;
- re-run with nothing changed: `evaluate_eligibility` again against one hand-written statement
  comparing the same CASE with the current determinations (both find nothing to write);
- simulation of the draft: `selectors.simulate_policy` against one hand-written
  `SELECT … GROUP BY` of both policies' tiers.

The hand-written SQL is the default rules written out by hand (not compiled from the policy
rows), so the check that both kinds reach the same outcome is a check of the engine too. Each
measured run is a fresh process, so its peak RSS (VmHWM) is its own: Django and all.
`--seniors 50000` gives a quick run; `--keep` leaves the database and `--reuse` runs on it again.
"""

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import (  # noqa: E402
    connect,
    database_url,
    recreate_database,
    server_config,
    setup_django,
    show,
)

AS_OF = dt.date(2026, 12, 1)  # the first of a month, as the evaluation before issuance runs
JOB = "bench-evaluate"
DRAFT_RULE = "low_fee_80_empty_nest_no_assistance"
COPY_BATCH = 50_000
WHY = "bench/evaluate.py measures set-based SQL on PostgreSQL"
TARGETS = {"evaluate": 2.0, "rerun": 2.0, "simulate": 2.0}
MEMORY_TARGET_MB = 200

# --- The default rules by hand (DESIGN.md §4.1, §4.4; eligibility/default_policy.py) ------------
# Placeholders: %(c60)s … the latest birth date of someone aged 60, 70, 75, 80, 100 on AS_OF.

EMPTY_NEST = "living_arrangement IN ('alone', 'empty_nest') AND NOT children_in_city"
ALONE_EMPTY_OR_LEFT = "living_arrangement IN ('alone', 'empty_nest', 'left_behind')"


def tier_sql(ids: str, low_fee_age: str) -> str:
    """The most favourable tier (subsidized, low fee, paid) of a senior aged 60 or over; `ids`
    names the policy's tier-id placeholders, `low_fee_age` the age of the 80+ low-fee rule."""
    return f"""CASE
        WHEN (birth_date <= %(c70)s AND self_care = 'disabled' AND NOT children_in_city AND receives_dibao)
             OR special_care_recipient OR three_no OR five_old OR birth_date <= %(c100)s
        THEN %({ids}_subsidized)s
        WHEN ({EMPTY_NEST} AND self_care = 'disabled')
             OR (birth_date <= %({low_fee_age})s AND {EMPTY_NEST} AND NOT receives_civil_affairs_assistance)
             OR hardship_assessed
        THEN %({ids}_low_fee)s
        ELSE %({ids}_paid)s
    END"""  # everyone 60 or over is at least paid (paid_resident)


CARE_SQL = f"""CASE
        WHEN self_care = 'disabled' OR (birth_date <= %(c80)s AND {ALONE_EMPTY_OR_LEFT})
             OR (receives_dibao AND {ALONE_EMPTY_OR_LEFT})
             OR (family_planning_special AND living_arrangement = 'alone')
        THEN 'A'
        WHEN (birth_date > %(c80)s AND severely_disabled AND living_arrangement = 'alone')
             OR (birth_date > %(c80)s AND couple_one_disabled) OR cares_for_disabled_child
        THEN 'B'
        WHEN special_difficulty THEN 'C'
        ELSE ''
    END"""

RULE_SQL = {
    "subsidized_70_dependent_no_children_dibao": (
        "birth_date <= %(c70)s AND self_care = 'disabled' AND NOT children_in_city AND receives_dibao"
    ),
    "subsidized_special_care": "special_care_recipient",
    "subsidized_three_no": "three_no",
    "subsidized_five_old": "five_old",
    "subsidized_centenarian": "birth_date <= %(c100)s",
    "low_fee_empty_nest_dependent": f"{EMPTY_NEST} AND self_care = 'disabled'",
    "low_fee_80_empty_nest_no_assistance": (
        f"birth_date <= %(c80)s AND {EMPTY_NEST} AND NOT receives_civil_affairs_assistance"
    ),
    "low_fee_hardship": "hardship_assessed",
    "paid_resident": "true",
    "care_a_disabled": "self_care = 'disabled'",
    "care_a_80_alone": f"birth_date <= %(c80)s AND {ALONE_EMPTY_OR_LEFT}",
    "care_a_dibao_alone": f"receives_dibao AND {ALONE_EMPTY_OR_LEFT}",
    "care_a_family_planning_alone": "family_planning_special AND living_arrangement = 'alone'",
    "care_b_severely_disabled_alone": "birth_date > %(c80)s AND severely_disabled AND living_arrangement = 'alone'",
    "care_b_couple_one_disabled": "birth_date > %(c80)s AND couple_one_disabled",
    "care_b_cares_for_child": "cares_for_disabled_child",
    "care_c_special_difficulty": "special_difficulty",
}
# The matched rule codes as a JSON array, in code order (what a determination stores).
MATCHED_SQL = "to_jsonb(array_remove(ARRAY[{}], NULL))".format(
    ", ".join(f"CASE WHEN {RULE_SQL[code]} THEN '{code}' END" for code in sorted(RULE_SQL))
)
IN_POPULATION = "status = 'active' AND birth_date <= %(c60)s"

BARE_EVALUATE = f"""
    INSERT INTO eligibility_determination (
        senior_id, policy_id, tier_id, care_visit_class, matched_rules, override_id,
        as_of, is_current, determined_at, determined_by_id, determined_by_job)
    SELECT id, %(policy)s, {tier_sql("a", "c80")}, {CARE_SQL}, {MATCHED_SQL}, NULL,
           %(as_of)s, true, now(), NULL, %(job)s
    FROM eligibility_senior WHERE {IN_POPULATION}
"""

BARE_RERUN = f"""
    SELECT count(*) FROM (
        SELECT id AS senior_id, {tier_sql("a", "c80")} AS tier_id, {CARE_SQL} AS care,
               {MATCHED_SQL} AS matched
        FROM eligibility_senior WHERE {IN_POPULATION}
    ) o FULL JOIN (
        SELECT senior_id, policy_id, tier_id, care_visit_class, matched_rules, override_id
        FROM eligibility_determination WHERE is_current
    ) d ON d.senior_id = o.senior_id
    WHERE o.senior_id IS NULL OR d.senior_id IS NULL OR d.policy_id <> %(policy)s
       OR d.tier_id IS DISTINCT FROM o.tier_id OR d.care_visit_class <> o.care
       OR d.matched_rules <> o.matched OR d.override_id IS NOT NULL
"""

BARE_SIMULATE = f"""
    SELECT community_id, a_tier, b_tier, care, count(*) FROM (
        SELECT community_id, {tier_sql("a", "c80")} AS a_tier, {tier_sql("b", "c75")} AS b_tier,
               {CARE_SQL} AS care
        FROM eligibility_senior WHERE {IN_POPULATION}
    ) s GROUP BY community_id, a_tier, b_tier, care
"""


def born_on_or_before(day: dt.date, years: int) -> dt.date:
    """The latest birth date of someone `years` old on `day` (29 February → 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def bare_params(cursor, policy_id: int, draft_id: int) -> dict:
    params = {f"c{years}": born_on_or_before(AS_OF, years) for years in (60, 70, 75, 80, 100)}
    params.update(policy=policy_id, as_of=AS_OF, job=JOB)
    for prefix, pk in (("a", policy_id), ("b", draft_id)):
        cursor.execute("SELECT code, id FROM eligibility_tier WHERE policy_id = %s", [pk])
        params.update({f"{prefix}_{code}": tier_id for code, tier_id in cursor.fetchall()})
    return params


# --- Arguments, Django, memory -----------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seniors", type=int, default=2_000_000, help="seniors in the registry (default 2000000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument(
        "--db-name", default="homecare_bench_evaluate", help="the throwaway database (dropped and recreated)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the database at the end (to EXPLAIN, or for --reuse)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use the database a --keep run left, if it holds --seniors seniors, instead of building it",
    )
    # Internal: one measured run in this process; prints one JSON line.
    parser.add_argument(
        "--child",
        choices=["evaluate", "bare-evaluate", "bare-rerun", "simulate", "bare-simulate"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--policy-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--draft-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seniors < 1 or args.repeats < 1:
        parser.error("--seniors and --repeats must be at least 1")
    return args


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kilobytes
    return 0.0


def peak_rss_mb() -> float:
    """This process's RSS high-water mark. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    exec, so a child would report its parent's peak (Django and a batch of COPY text) as its own."""
    return _status_mb("VmHWM")


def rss_mb() -> float:
    return _status_mb("VmRSS")


# --- The measured kinds, each run in its own process -------------------------------------------


def run_ours(kind: str, draft_id: int) -> dict:
    from eligibility.models import Policy
    from eligibility.selectors import simulate_policy
    from eligibility.services import evaluate_eligibility

    draft = Policy.objects.get(pk=draft_id)
    before = rss_mb()
    started = time.perf_counter()
    if kind == "simulate":
        simulation = simulate_policy(draft=draft, as_of=AS_OF)
        seconds = time.perf_counter() - started
        tiers, care = {}, {}
        for move in simulation.tier_moves:
            key = "|".join(t.code if t else "" for t in (move["from"], move["to"]))
            tiers[key] = tiers.get(key, 0) + move["seniors"]
        for move in simulation.care_moves:
            key = f"{move['from']}|{move['to']}"
            care[key] = care.get(key, 0) + move["seniors"]
        result = {"tiers": tiers, "care": care, "seniors": simulation.seniors}
    else:
        outcome = evaluate_eligibility(as_of=AS_OF, job=JOB)
        seconds = time.perf_counter() - started
        result = {"evaluated": outcome.evaluated, "changed": outcome.changed, "retired": outcome.retired}
    return {"seconds": seconds, "rss_before_mb": before, **result}


def run_bare(kind: str, config: dict, db_name: str, policy_id: int, draft_id: int) -> dict:
    conn = connect(config, db_name)
    try:
        with conn.cursor() as cursor:
            params = bare_params(cursor, policy_id, draft_id)
            cursor.execute(
                "SELECT id, code FROM eligibility_tier WHERE policy_id IN (%s, %s)", [policy_id, draft_id]
            )
            codes = dict(cursor.fetchall())
            conn.commit()
            before = rss_mb()
            started = time.perf_counter()
            if kind == "bare-evaluate":
                cursor.execute(BARE_EVALUATE, params)
                result = {"changed": cursor.rowcount}
            elif kind == "bare-rerun":
                cursor.execute(BARE_RERUN, params)
                result = {"differing": cursor.fetchone()[0]}
            else:
                cursor.execute(BARE_SIMULATE, params)
                rows = cursor.fetchall()
            conn.commit()
            seconds = time.perf_counter() - started
    finally:
        conn.close()
    if kind == "bare-simulate":
        tiers, care = {}, {}
        for _community, a_tier, b_tier, care_class, seniors in rows:
            key = f"{codes.get(a_tier, '')}|{codes.get(b_tier, '')}"
            tiers[key] = tiers.get(key, 0) + seniors
            care[f"{care_class}|{care_class}"] = care.get(f"{care_class}|{care_class}", 0) + seniors
        result = {"tiers": tiers, "care": care, "seniors": sum(tiers.values())}
    return {"seconds": seconds, "rss_before_mb": before, **result}


def child(args) -> None:
    url = os.environ["DATABASE_URL"]
    config = server_config(url, why=WHY)
    if args.child.startswith("bare-"):
        result = run_bare(args.child, config, args.db_name, args.policy_id, args.draft_id)
    else:
        setup_django(url, args.db_name)
        result = run_ours(args.child, args.draft_id)
    result["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure_in_child(kind: str, args, policy_id: int, draft_id: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--db-name",
        args.db_name,
        "--policy-id",
        str(policy_id),
        "--draft-id",
        str(draft_id),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        sys.exit(f"the {kind} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- The city: regions, seniors by COPY, the draft ----------------------------------------------

SENIOR_COLUMNS = (
    "id_card_number", "name", "name_initials", "birth_date", "sex", "community_id", "phone", "address",
    "emergency_contact_name", "emergency_contact_relation", "emergency_contact_phone",
    "living_arrangement", "children_in_city", "self_care", "dementia", "severely_disabled",
    "receives_dibao", "three_no", "special_care_recipient", "five_old", "family_planning_special",
    "receives_civil_affairs_assistance", "hardship_assessed", "cares_for_disabled_child",
    "couple_one_disabled", "special_difficulty", "status", "status_date", "created_at", "updated_at",
)  # fmt: skip
CONTACT_FIELDS = (
    "phone", "address", "emergency_contact_name", "emergency_contact_relation", "emergency_contact_phone",
)  # fmt: skip
FLAG_FIELDS = (
    "dementia", "severely_disabled", "receives_dibao", "three_no", "special_care_recipient",
    "five_old", "family_planning_special", "receives_civil_affairs_assistance", "hardship_assessed",
    "cares_for_disabled_child", "couple_one_disabled", "special_difficulty",
)  # fmt: skip


def copy_lines(rows, community_ids: dict, stamp: str):
    """COPY text lines of the generated seniors. The generator writes no tab, newline or
    backslash, so no value needs escaping; the pinyin initials (search only) are left empty."""
    for row in rows:
        number = row["id_card_number"]
        birth = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
        cells = [number, row["name"], "", birth, "M" if int(number[16]) % 2 else "F"]
        cells.append(str(community_ids[row["community_code"]]))
        cells += [row[field] for field in CONTACT_FIELDS]
        cells += [row["living_arrangement"], "t" if row["children_in_city"] else "f", row["self_care"]]
        cells += ["t" if row[flag] else "f" for flag in FLAG_FIELDS]
        cells += [row["status"], row["status_date"].isoformat(), stamp, stamp]
        yield "\t".join(cells) + "\n"


def copy_seniors(config: dict, db_name: str, n: int, community_codes: list[str]) -> None:
    """Stream `n` generated seniors into the registry by COPY, generating the next batch while
    the server stores the last (no history rows: a registry loaded in bulk)."""
    from bench.city import senior_rows

    conn = connect(config, db_name)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT code, id FROM eligibility_region WHERE level = 'community'")
            community_ids = dict(cursor.fetchall())
            stamp = dt.datetime.now(dt.UTC).isoformat()
            statement = f"COPY eligibility_senior ({', '.join(SENIOR_COLUMNS)}) FROM STDIN"
            lines = copy_lines(senior_rows(n, community_codes=community_codes), community_ids, stamp)
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = None
                while True:
                    batch = "".join(line for _, line in zip(range(COPY_BATCH), lines, strict=False))
                    if pending is not None:
                        pending.result()
                    if not batch:
                        break
                    pending = pool.submit(cursor.copy_expert, statement, io.StringIO(batch))
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE eligibility_senior")
    finally:
        conn.close()


def make_draft() -> tuple[int, int]:
    """The draft of the default policy that lowers the low-fee age 80 → 75, as the bureau makes
    it on the policies page; returns (id of the policy in force, id of the draft)."""
    from eligibility import default_policy
    from eligibility.models import Policy
    from eligibility.selectors import policy_in_force
    from eligibility.services import copy_policy, delete_draft, save_rule

    current = policy_in_force(as_of=AS_OF)
    for left in Policy.objects.filter(code=current.code, status=Policy.Status.DRAFT):  # a --reuse run
        delete_draft(policy=left, by=None)
    draft = copy_policy(policy=current, by=None)
    condition = default_policy.all_of(
        default_policy.age(">=", 75),
        default_policy.EMPTY_NEST,
        default_policy.no("receives_civil_affairs_assistance"),
    )
    save_rule(policy=draft, by=None, rule=draft.rules.get(code=DRAFT_RULE), condition=condition)
    return current.pk, draft.pk


def count_seniors(config: dict, db_name: str) -> int | None:
    """How many seniors the database a --keep run left holds (None: no such database or table)."""
    import psycopg2

    try:
        conn = connect(config, db_name)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM eligibility_senior")
            return cursor.fetchone()[0]
    except psycopg2.ProgrammingError:
        return None
    finally:
        conn.close()


# --- Between runs: the same table state for both kinds -----------------------------------------


def admin_statements(config: dict, db_name: str, *statements: str) -> None:
    conn = connect(config, db_name)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def settle(config: dict, db_name: str) -> None:
    """Write out the last run's dirty pages now, not during the next run."""
    import psycopg2

    # CHECKPOINT needs a superuser or pg_checkpoint; without it the runs are only noisier.
    with contextlib.suppress(psycopg2.errors.InsufficientPrivilege):
        admin_statements(config, db_name, "CHECKPOINT")


def determinations(config: dict, db_name: str) -> dict:
    """The current determinations, per tier code and class: [count, a checksum of every row's
    senior, policy, tier, class, matched rules and override] (same figures, same rows)."""
    conn = connect(config, db_name)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                """SELECT coalesce(t.code, ''), d.care_visit_class, count(*),
                          sum(hashtext(concat_ws('|', d.senior_id, d.policy_id, d.tier_id,
                              d.care_visit_class, d.matched_rules::text, d.override_id))::bigint)
                   FROM eligibility_determination d LEFT JOIN eligibility_tier t ON t.id = d.tier_id
                   WHERE d.is_current GROUP BY 1, 2 ORDER BY 1, 2"""
            )
            return {f"{code}|{care}": [count, int(checksum)] for code, care, count, checksum in cursor}
    finally:
        conn.close()


# --- The parent: set up, alternate the runs, summarise ------------------------------------------


def main() -> None:
    args = parse_args()
    url = database_url("bench/evaluate.py")
    if args.child:
        child(args)
        return
    on_a_throwaway_city(args, server_config(url, why=WHY), url, measure)


def on_a_throwaway_city(args, config: dict, url: str, measure) -> None:
    """Run `measure(args, config, url, reuse=…)` on the database `args.db_name`, made afresh unless
    `--reuse` finds the city of the same size a `--keep` run left, and dropped after unless `--keep`."""
    if config["NAME"] == args.db_name:
        sys.exit(f"DATABASE_URL names {args.db_name}, the database this script drops; use another one.")

    started = time.perf_counter()
    reuse = args.reuse and count_seniors(config, args.db_name) == args.seniors
    if not reuse:
        recreate_database(config, args.db_name, create=True)
    try:
        measure(args, config, url, reuse=reuse)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not args.keep:
            recreate_database(config, args.db_name, create=False)
    print(f"\nthe whole bench took {time.perf_counter() - started:.0f} s")


def build_city(args, config: dict, url: str, *, reuse: bool) -> float | None:
    """Django set up on the throwaway database, migrated, and `args.seniors` seniors COPYed in
    (unless reusing); returns when the build began (None when reusing)."""
    setup_django(url, args.db_name)
    from django.core.management import call_command
    from django.db import connections

    from bench.city import create_regions

    if reuse:
        print(f"reusing {args.db_name} ({args.seniors} seniors)")
        return None
    began = time.perf_counter()
    call_command("migrate", verbosity=0)
    codes = create_regions()
    connections.close_all()
    copy_seniors(config, args.db_name, args.seniors, codes)
    return began


def measure(args, config: dict, url: str, *, reuse: bool) -> None:
    began = build_city(args, config, url, reuse=reuse)
    import django
    from django.db import connections

    if began is not None:
        print(f"built {args.db_name}: {args.seniors} seniors by COPY in {time.perf_counter() - began:.0f} s")
    policy_id, draft_id = make_draft()
    connections.close_all()
    server_version, work_mem = show(config, args.db_name, "server_version", "work_mem")
    print(
        f"PostgreSQL {server_version} (work_mem {work_mem}), Python {platform.python_version()}, "
        f"Django {django.get_version()}; {args.seniors} seniors, as of {AS_OF}; {args.repeats} runs "
        f"of each kind, alternating, each in a fresh process"
    )

    def run(kind: str) -> dict:
        return measure_in_child(kind, args, policy_id, draft_id)

    results: dict[str, dict[str, list[dict]]] = {}

    def record(step: str, kind: str, r: int, result: dict) -> None:
        results.setdefault(step, {}).setdefault(kind, []).append(result)
        print(
            f"  run {r + 1}/{args.repeats} {kind:5s} {result['seconds']:8.2f} s   "
            f"peak RSS {result['maxrss_mb']:6.1f} MB"
        )

    # (a) The first evaluation: no determinations before either kind.
    print("\n(a) first evaluation (determinations truncated before each run)")
    outcomes = {}
    for r in range(args.repeats):
        for kind in ("bare", "ours") if r % 2 == 0 else ("ours", "bare"):
            # CASCADE: vouchers refer to determinations, and this city has none.
            admin_statements(config, args.db_name, "TRUNCATE eligibility_determination CASCADE")
            settle(config, args.db_name)
            result = run("bare-evaluate" if kind == "bare" else "evaluate")
            record("evaluate", kind, r, result)
            outcome = determinations(config, args.db_name)
            if outcomes.setdefault(kind, outcome) != outcome:
                sys.exit(f"{kind} run {r + 1} reached another outcome than its first run")
    if outcomes["ours"] != outcomes["bare"]:
        sys.exit(f"the two kinds disagree:\n  ours {outcomes['ours']}\n  bare {outcomes['bare']}")
    written = sum(count for count, _checksum in outcomes["ours"].values())
    for result in results["evaluate"]["ours"]:
        if (result["evaluated"], result["changed"], result["retired"]) != (written, written, 0):
            sys.exit(f"the first evaluation reported {result}, not {written} evaluated and changed")
    print(f"  same outcome, row for row (checksums agree): {written} current determinations")
    for key, (count, _checksum) in outcomes["ours"].items():
        tier, care = key.split("|")
        print(f"    {tier or '-':11s} class {care or '-'}  {count:9d}")

    # (b) A re-run with nothing changed, over the determinations (a) left.
    print("\n(b) re-run with nothing changed")
    admin_statements(config, args.db_name, "VACUUM ANALYZE eligibility_determination")
    for r in range(args.repeats):
        for kind in ("bare", "ours") if r % 2 == 0 else ("ours", "bare"):
            settle(config, args.db_name)
            result = run("bare-rerun" if kind == "bare" else "evaluate")
            record("rerun", kind, r, result)
            if kind == "bare" and result["differing"] != 0:
                sys.exit(f"the bare re-run found {result['differing']} differing determinations")
            if kind == "ours" and (result["evaluated"], result["changed"], result["retired"]) != (
                written,
                0,
                0,
            ):
                sys.exit(f"the re-run reported {result}, not {written} evaluated and nothing changed")
    if determinations(config, args.db_name) != outcomes["ours"]:
        sys.exit("the re-runs changed the determinations")
    print("  both found nothing to write; the determinations are unchanged")

    # (c) The simulation of the draft (80 → 75), writing nothing.
    print("\n(c) simulation of the draft: low-fee age 80 → 75")
    for r in range(args.repeats):
        for kind in ("bare", "ours") if r % 2 == 0 else ("ours", "bare"):
            result = run("bare-simulate" if kind == "bare" else "simulate")
            record("simulate", kind, r, result)
    ours, bare = results["simulate"]["ours"][0], results["simulate"]["bare"][0]
    if (ours["tiers"], ours["care"]) != (bare["tiers"], bare["care"]):
        sys.exit(f"the simulations disagree:\n  ours {ours}\n  bare {bare}")
    current = {}
    for key, n in ours["tiers"].items():
        current[key.split("|")[0]] = current.get(key.split("|")[0], 0) + n
    evaluated = {}
    for key, (n, _checksum) in outcomes["ours"].items():
        evaluated[key.split("|")[0]] = evaluated.get(key.split("|")[0], 0) + n
    if current != evaluated:
        sys.exit(f"the simulation's current tiers {current} are not the evaluation's {evaluated}")
    print("  same moves from both; the current side matches the evaluation")
    for key, n in sorted(ours["tiers"].items()):
        a, b = key.split("|")
        print(f"    {a or '-':11s} → {b or '-':11s} {n:9d}{'  moved' if a != b else ''}")

    summarise(results)


def summarise(results: dict) -> None:
    names = {
        "evaluate": "first evaluation",
        "rerun": "re-run, nothing changed",
        "simulate": "simulation 80 → 75",
    }
    print()
    print(
        f"{'':26s}{'ours (median)':>15s}{'bare (median)':>15s}{'ours / bare':>13s}{'target':>9s}"
        f"{'peak RSS ours':>15s}{'(before the call)':>19s}"
    )
    worst = 0.0
    for step, name in names.items():
        ours = statistics.median(r["seconds"] for r in results[step]["ours"])
        bare = statistics.median(r["seconds"] for r in results[step]["bare"])
        peak = max(r["maxrss_mb"] for r in results[step]["ours"])
        before = max(r["rss_before_mb"] for r in results[step]["ours"])
        worst = max(worst, peak)
        ratio = ours / bare
        verdict = "ok" if ratio <= TARGETS[step] else "MISSED"
        print(
            f"{name:26s}{ours:13.2f} s{bare:13.2f} s{ratio:13.2f}{'≤ ' + str(TARGETS[step]):>9s}"
            f"{peak:12.1f} MB{before:16.1f} MB  {verdict}"
        )
    verdict = "ok" if worst <= MEMORY_TARGET_MB else "MISSED"
    print(f"peak RSS of the engine's processes: {worst:.1f} MB (target ≤ {MEMORY_TARGET_MB} MB) {verdict}")


if __name__ == "__main__":
    main()
