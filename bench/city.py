"""A synthetic city for the benchmarks: districts → subdistricts → communities, and seniors with
valid, unique ID-card numbers, names, phones, addresses and the facts the rules read.

Everything is a generator: another benchmark can stream a 2,000,000-senior city into the
database (`insert_seniors`) or a workbook (`write_import_workbook`) without holding it in memory.
The same seed gives the same city. The region codes follow the national statistical codes
(330106 a district, 330106001 a subdistrict, 330106001001 a community); the ID-card numbers are
GB 11643 numbers with a right check digit, unique by construction (see `id_card_number`).

    from bench.city import create_regions, write_import_workbook
    codes = create_regions()                       # Django set up: 1,000 communities by default
    write_import_workbook("/tmp/city.xlsx", 100_000, community_codes=codes)
"""

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stdnum.cn import ric

# Birth places (the first six digits of an ID): districts of Hangzhou.
BIRTH_PLACES = ("330102", "330105", "330106", "330108", "330109", "330110", "330111", "330112")
BORN_FROM, BORN_UNTIL = dt.date(1925, 1, 1), dt.date(1960, 12, 31)  # 65 to 101 in 2026
_DAYS = (BORN_UNTIL - BORN_FROM).days + 1
# (day, sequence) pairs per birth place; a multiplier coprime with it spreads consecutive
# indexes over birth dates and sequences while keeping the mapping one-to-one.
_PAIRS = _DAYS * 1000
_SPREAD = 7919  # prime, and no factor of _PAIRS (2³·3³·5³·487)
CAPACITY = _PAIRS * len(BIRTH_PLACES)

DISTRICT_NAMES = ("上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区", "富阳区", "临安区")  # fmt: skip
SUBDISTRICT_NAMES = ("北山", "西溪", "翠苑", "文新", "古荡", "留下", "转塘", "灵隐", "蒋村", "三墩", "双浦", "之江")  # fmt: skip
COMMUNITY_NAMES = ("保俶", "松木场", "曙光", "黄龙", "桂花", "嘉绿", "文鼎", "星洲", "金秋", "紫荆", "翠苑", "益乐")  # fmt: skip

# Common surnames appear more than once, to weigh them; given names are one or two of GIVEN.
SURNAMES = "王王王李李李张张张刘刘陈陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"  # fmt: skip
GIVEN = "秀英桂兰玉凤珍华明德文国建强志伟荣福金海林永康正长根宝平民云龙美丽月娥芬梅芳银花菊娟琴萍"
STREETS = ("保俶路", "曙光路", "文三路", "天目山路", "古墩路", "教工路", "学院路", "莫干山路", "体育场路", "凤起路")  # fmt: skip
RELATIONS = ("儿子", "女儿", "儿媳", "女婿", "侄子", "邻居", "配偶")
LIVING = (("with_family", 55), ("empty_nest", 25), ("alone", 15), ("left_behind", 5))
SELF_CARE = (("independent", 75), ("partial", 17), ("disabled", 8))
FLAG_RATES = {
    "dementia": 0.04,
    "severely_disabled": 0.03,
    "receives_dibao": 0.05,
    "three_no": 0.01,
    "special_care_recipient": 0.01,
    "five_old": 0.005,
    "family_planning_special": 0.01,
    "receives_civil_affairs_assistance": 0.06,
    "hardship_assessed": 0.04,
    "cares_for_disabled_child": 0.01,
    "couple_one_disabled": 0.03,
    "special_difficulty": 0.08,
}
# How the import workbook spells values, as a community worker would type them.
LIVING_ZH = {"alone": "独居", "empty_nest": "空巢", "left_behind": "留守", "with_family": "与家人同住"}
SELF_CARE_ZH = {"independent": "能自理", "partial": "部分自理", "disabled": "不能自理"}
STATUS_ZH = {"active": "正常", "moved_away": "迁出", "deceased": "去世"}


@dataclass(frozen=True)
class RegionRow:
    code: str
    name: str
    level: str
    parent_code: str | None


def region_rows(*, districts: int = 10, subdistricts: int = 10, communities: int = 10) -> Iterator[RegionRow]:
    """The city's regions, parents before children: `districts` × `subdistricts` × `communities`."""
    for d in range(districts):
        district = f"3301{d + 1:02d}"
        yield RegionRow(
            district,
            DISTRICT_NAMES[d % len(DISTRICT_NAMES)] + (f"{d // 10}" if d >= 10 else ""),
            "district",
            None,
        )
        for s in range(subdistricts):
            subdistrict = f"{district}{s + 1:03d}"
            name = SUBDISTRICT_NAMES[s % len(SUBDISTRICT_NAMES)] + "街道"
            yield RegionRow(subdistrict, name, "subdistrict", district)
            for c in range(communities):
                name = COMMUNITY_NAMES[c % len(COMMUNITY_NAMES)] + f"{c // len(COMMUNITY_NAMES) or ''}社区"
                yield RegionRow(f"{subdistrict}{c + 1:03d}", name, "community", subdistrict)


def create_regions(**shape) -> list[str]:
    """Insert the regions (Django must be set up) and return the community codes."""
    from eligibility.models import Region

    by_code: dict[str, Region] = {}
    communities = []
    for row in region_rows(**shape):
        region = Region(code=row.code, name=row.name, level=row.level, parent=by_code.get(row.parent_code))
        region.save()
        by_code[row.code] = region
        if row.level == "community":
            communities.append(row.code)
    return communities


def id_card_number(index: int) -> str:
    """The index-th senior's ID-card number: distinct for every index below CAPACITY."""
    if not 0 <= index < CAPACITY:
        raise ValueError(f"index must be in [0, {CAPACITY})")
    place, pair = divmod(index, _PAIRS)
    pair = (pair * _SPREAD) % _PAIRS
    day, sequence = divmod(pair, 1000)
    birth = BORN_FROM + dt.timedelta(days=day)
    body = f"{BIRTH_PLACES[place]}{birth:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit


def _weighted(rng: random.Random, pairs) -> str:
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights)[0]


def _mobile(rng: random.Random) -> str:
    return f"1{rng.choice('35789')}{rng.randrange(10**9):09d}"


def senior_rows(n: int, *, community_codes: list[str], seed: int = 2026, start: int = 0) -> Iterator[dict]:
    """`n` seniors as the registry stores them (field name -> value; `community_code` instead of
    the foreign key), from index `start`. Communities are filled in turn."""
    rng = random.Random(seed + start)
    for index in range(start, start + n):
        number = id_card_number(index)
        surname = rng.choice(SURNAMES)
        given = rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.8 else "")
        community = community_codes[index % len(community_codes)]
        living = _weighted(rng, LIVING)
        row = {
            "id_card_number": number,
            "name": surname + given,
            "community_code": community,
            "phone": _mobile(rng) if rng.random() < 0.8 else f"0571-8{rng.randrange(10**6, 10**7)}",
            "address": f"{rng.choice(STREETS)}{rng.randrange(1, 400)}号{rng.randrange(1, 8)}单元{rng.randrange(101, 1802)}室",
            "living_arrangement": living,
            "children_in_city": living == "with_family" or rng.random() < 0.3,
            "self_care": _weighted(rng, SELF_CARE),
            **{flag: rng.random() < rate for flag, rate in FLAG_RATES.items()},
            "emergency_contact_name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
            "emergency_contact_relation": rng.choice(RELATIONS),
            "emergency_contact_phone": _mobile(rng),
            "status": "active",
            "status_date": dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(365)),
        }
        yield row


def import_cells(row: dict) -> list:
    """A senior as a row of the import workbook, in the order of `eligibility.importer.COLUMNS`:
    Chinese labels and 是/否, dates as Excel dates."""
    from eligibility.importer import COLUMNS

    cells = []
    for column in COLUMNS:
        value = row["community_code" if column.field == "community" else column.field]
        if column.kind == "flag":
            value = "是" if value else "否"
        elif column.field == "living_arrangement":
            value = LIVING_ZH[value]
        elif column.field == "self_care":
            value = SELF_CARE_ZH[value]
        elif column.field == "status":
            value = STATUS_ZH[value]
        cells.append(value)
    return cells


def write_import_workbook(path: str | Path, n: int, *, community_codes: list[str], seed: int = 2026) -> int:
    """An import workbook of `n` seniors (sheet 老年人, Chinese headers), streamed by openpyxl's
    write-only mode. Returns the number of rows written."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    from eligibility.importer import COLUMNS, DATA_SHEET

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(DATA_SHEET)
    sheet.append([column.zh for column in COLUMNS])
    date_positions = [i for i, column in enumerate(COLUMNS) if column.kind == "date"]
    written = 0
    for row in senior_rows(n, community_codes=community_codes, seed=seed):
        cells = import_cells(row)
        for position in date_positions:
            cell = WriteOnlyCell(sheet, value=cells[position])
            cell.number_format = "yyyy-mm-dd"
            cells[position] = cell
        sheet.append(cells)
        written += 1
    workbook.save(path)
    return written


def insert_seniors(
    n: int, *, community_codes: list[str], seed: int = 2026, start: int = 0, batch: int = 5000
) -> int:
    """Insert `n` seniors straight into the registry (bulk_create in batches, no history): the
    quick way for other benchmarks to stand up a city. Django must be set up."""
    from eligibility.models import Region, Senior
    from eligibility.names import name_initials

    communities = dict(Region.objects.filter(code__in=community_codes).values_list("code", "id"))
    inserted = 0
    pending: list[Senior] = []
    for row in senior_rows(n, community_codes=community_codes, seed=seed, start=start):
        number = row.pop("id_card_number")
        community = communities[row.pop("community_code")]
        pending.append(
            Senior(
                id_card_number=number,
                birth_date=ric.get_birth_date(number),
                sex="M" if int(number[16]) % 2 else "F",
                community_id=community,
                name_initials=name_initials(row["name"]),
                **row,
            )
        )
        if len(pending) >= batch:
            inserted += len(Senior.objects.bulk_create(pending))
            pending = []
    if pending:
        inserted += len(Senior.objects.bulk_create(pending))
    return inserted
