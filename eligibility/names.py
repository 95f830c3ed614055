"""Pinyin initials of Chinese names, for searching the registry by `zs` for 张三 (pypinyin).

A surname with several readings (单 dān/shàn, 曾 zēng/céng) gets one variant per reading, so a
worker finds 单雄信 by `sxx` as well as `dxx`; the given name takes pypinyin's usual reading.
"""

from pypinyin import Style, lazy_pinyin, pinyin

MAX_VARIANTS = 4


def name_initials(name: str) -> str:
    """' zs' for 张三; ' dxx sxx cxx' for 单雄信. Letters and digits of a non-Chinese name stay."""
    name = "".join(name.split())
    if not name:
        return ""
    first = [letter.lower() for letter in pinyin(name[0], style=Style.FIRST_LETTER, heteronym=True)[0]]
    rest = "".join(letter[:1].lower() for letter in lazy_pinyin(name[1:], style=Style.FIRST_LETTER))
    variants = list(dict.fromkeys(letter[:1] + rest for letter in first if letter))[:MAX_VARIANTS]
    return "".join(" " + variant for variant in variants)
