"""Calendar months in Asia/Shanghai, the unit of vouchers and settlement. Pure helpers."""

import calendar
import datetime as dt
import re
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> dt.date:
    """'2026-11' -> date(2026, 11, 1). Raises ValueError on anything else."""
    match = _MONTH.match(text.strip())
    if not match:
        raise ValueError(f"not a month in the form YYYY-MM: {text!r}")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def first_day(day: dt.date) -> dt.date:
    return day.replace(day=1)


def last_day(month: dt.date) -> dt.date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def next_month(month: dt.date) -> dt.date:
    return (last_day(month) + dt.timedelta(days=1)).replace(day=1)


def previous_month(month: dt.date) -> dt.date:
    return (first_day(month) - dt.timedelta(days=1)).replace(day=1)


def local_date(moment: dt.datetime) -> dt.date:
    """The calendar date of an aware datetime in Asia/Shanghai."""
    return moment.astimezone(SHANGHAI).date()


def month_of(moment: dt.datetime) -> dt.date:
    return first_day(local_date(moment))


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the month as aware datetimes in Asia/Shanghai."""
    start = dt.datetime.combine(first_day(month), dt.time.min, tzinfo=SHANGHAI)
    end = dt.datetime.combine(next_month(month), dt.time.min, tzinfo=SHANGHAI)
    return start, end


def format_month(month: dt.date) -> str:
    return f"{month:%Y-%m}"
