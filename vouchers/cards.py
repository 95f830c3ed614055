"""Printed voucher cards (服务卡): A4 sheets of cards that a community worker cuts and hands out.

Each card carries the QR code of the senior's page (`tokens.voucher_url`, whatever the token's
form), what the senior reads in large type (masked name, month, tier, face value) and whom to
call (the community and its contact, the providers' hotlines): nothing else personal. The font
is embedded, so a printer without Chinese fonts prints the same card.

A community's whole month prints in seconds (2,000 cards in about 4 s, a quarter of it the
query): the QR symbols are built without qrcode's bit-by-bit encoder and its eight trial builds
(`qr_symbol`), what the cards of a community share is drawn once as a PDF form, and the cards'
data come in a constant number of queries (`selectors.vouchers_to_print`, `contacts_for_vouchers`).
"""

import functools
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.exceptions
import qrcode.util
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import formats, translation
from django.utils.translation import gettext as _
from reportlab import rl_config
from reportlab.lib.colors import HexColor, white
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from config.i18n import name_in_language
from vouchers import tokens
from vouchers.selectors import VoucherContacts, contacts_for_vouchers

FONT_PACKAGE = "fonts-wqy-microhei"

# Binary streams: ASCII85 makes the file a quarter larger and, in pure Python, is slow to write.
rl_config.useA85 = 0

# --- QR symbols -----------------------------------------------------------------------------------

LEVEL_M = qrcode.constants.ERROR_CORRECT_M  # survives smudges and folds on a card carried for a month
_BYTE_BITS = [f"{byte:08b}" for byte in range(256)]
_PADDING = ("11101100", "00010001")  # the standard's pad codewords, alternating
# Penalty rule 3: a 1:1:3:1:1 pattern with four light modules on one side, like a finder pattern.
_FINDER_LIKE = ("10111010000", "00001011101")
_DARK_RUN = re.compile("1+")

# GF(256) for the Reed–Solomon codewords (the QR polynomial x⁸ + x⁴ + x³ + x² + 1).
_EXP, _LOG = [0] * 512, [0] * 256
_value = 1
for _power in range(255):
    _EXP[_power], _LOG[_value] = _value, _power
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D
for _power in range(255, 512):
    _EXP[_power] = _EXP[_power - 255]


def _times(a: int, b: int) -> int:
    return _EXP[_LOG[a] + _LOG[b]] if a and b else 0


@functools.cache
def _remainders(ec_count: int) -> tuple[int, ...]:
    """Per leading coefficient f: f × the generator polynomial without its leading term, as an
    integer of `ec_count` bytes, so one division step is a shift and an XOR."""
    generator = [1]
    for power in range(ec_count):  # ∏ (x − αⁱ)
        generator = [
            high ^ low
            for high, low in zip(
                [*generator, 0], [0, *(_times(c, _EXP[power]) for c in generator)], strict=True
            )
        ]
    return tuple(int.from_bytes(bytes(_times(f, c) for c in generator[1:]), "big") for f in range(256))


def _error_correction(data: Sequence[int], ec_count: int) -> list[int]:
    table, shift, mask = _remainders(ec_count), 8 * (ec_count - 1), (1 << (8 * ec_count)) - 1
    remainder = 0
    for byte in data:
        remainder = ((remainder << 8) & mask) ^ table[byte ^ (remainder >> shift)]
    return list(remainder.to_bytes(ec_count, "big"))


class _Bits:
    """The bit buffer that qrcode's segments write themselves into (`put`), as text."""

    def __init__(self):
        self.parts = []

    def put(self, number: int, length: int) -> None:
        self.parts.append(format(number, f"0{length}b"))


def _segment_bits(segments) -> list[str]:
    """Each segment's data bits (the same in every version)."""
    out = []
    for segment in segments:
        bits = _Bits()
        segment.write(bits)
        out.append("".join(bits.parts))
    return out


def _fit(segments, payloads: list[str]) -> int:
    """The smallest version that holds the segments at level M (qrcode's `best_fit`, without
    its bit-by-bit buffer)."""
    for version in range(1, 41):
        needed = sum(
            4 + qrcode.util.length_in_bits(segment.mode, version) + len(payload)
            for segment, payload in zip(segments, payloads, strict=True)
        )
        if needed <= qrcode.util.BIT_LIMIT_TABLE[LEVEL_M][version]:
            return version
    raise qrcode.exceptions.DataOverflowError(f"{needed} bits do not fit in a QR code")


def _codewords(version: int, segments, payloads: list[str]) -> list[int]:
    """What qrcode's `util.create_data` returns (tests compare them): the segments with their
    mode and length, terminator, padding, then the blocks' data and error-correction codewords
    interleaved."""
    text = "".join(
        f"{segment.mode:04b}{len(segment):0{qrcode.util.length_in_bits(segment.mode, version)}b}{payload}"
        for segment, payload in zip(segments, payloads, strict=True)
    )
    blocks = qrcode.base.rs_blocks(version, LEVEL_M)
    limit = 8 * sum(block.data_count for block in blocks)
    text += "0" * min(limit - len(text), 4)  # the terminator
    text += "0" * (-len(text) % 8)
    data = [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]
    data += [int(_PADDING[i % 2], 2) for i in range(limit // 8 - len(data))]
    data_blocks, ec_blocks, offset = [], [], 0
    for block in blocks:
        chunk = data[offset : offset + block.data_count]
        offset += block.data_count
        data_blocks.append(chunk)
        ec_blocks.append(_error_correction(chunk, block.total_count - block.data_count))
    out = []
    for group in (data_blocks, ec_blocks):
        for i in range(max(map(len, group))):
            out.extend(chunk[i] for chunk in group if i < len(chunk))
    return out


@dataclass(frozen=True)
class QrSymbol:
    version: int
    rows: tuple[str, ...]  # "1" dark, "0" light; without the quiet zone

    @property
    def size(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class _Layout:
    """Everything about the symbols of one version that does not depend on their data.

    A symbol is an integer of size² bits, row by row, the top-left module the highest bit, so
    that `symbol >> k` puts each module's k-th left neighbour in its place; its transpose (column
    by column) does the same for the neighbours above."""

    size: int
    data_modules: int
    gather: operator.itemgetter  # data bits + "0" -> the modules row by row (function modules "0")
    gather_columns: operator.itemgetter  # the same, column by column
    masked: tuple[tuple[int, int], ...]  # per mask: (rows, columns) of the function patterns and mask
    after: tuple[int, ...]  # after[k]: the modules with at least k modules to their left
    full: int


@functools.cache
def _layout(version: int) -> _Layout:
    """Built once per version with qrcode's own construction, so the symbols made here are
    qrcode's, module for module (tests/vouchers/test_cards.py compares them)."""
    n = version * 4 + 17
    probe = qrcode.QRCode(version=version, error_correction=LEVEL_M)

    def board(mask: int, fill: int) -> str:
        probe.data_cache = [fill] * (n * n // 8 + 1)  # more bytes than there are modules
        probe.makeImpl(False, mask)
        return "".join("1" if module else "0" for row in probe.modules for module in row)

    def columns(text: str) -> str:
        return "".join(text[r * n + c] for c in range(n) for r in range(n))

    boards = [board(mask, 0) for mask in range(8)]
    # The data modules are those that the data changes; the rest are the function patterns.
    data = {i for i, (zero, one) in enumerate(zip(boards[0], board(0, 0xFF), strict=True)) if zero != one}
    # The standard's placement: two columns at a time from the right, up then down, skipping the
    # vertical timing pattern.
    order, col, upward = [], n - 1, True
    while col > 0:
        if col == 6:
            col -= 1
        for row in range(n - 1, -1, -1) if upward else range(n):
            order.extend(cell for cell in (row * n + col, row * n + col - 1) if cell in data)
        upward, col = not upward, col - 2
    position = {cell: index for index, cell in enumerate(order)}
    light = len(order)  # the index of the "0" after the data bits, which every function module takes
    by_rows = [position.get(cell, light) for cell in range(n * n)]
    return _Layout(
        size=n,
        data_modules=len(order),
        gather=operator.itemgetter(*by_rows),
        gather_columns=operator.itemgetter(*(by_rows[r * n + c] for c in range(n) for r in range(n))),
        masked=tuple((int(text, 2), int(columns(text), 2)) for text in boards),
        after=tuple(
            int("".join("1" if c >= k else "0" for _r in range(n) for c in range(n)), 2) for k in range(11)
        ),
        full=(1 << (n * n)) - 1,
    )


def _line_penalty(dark: int, layout: _Layout) -> int:
    """Rules 1 and 3 along the lines of `dark` (rows, or columns of a transpose)."""
    light = layout.full ^ dark
    shifted = {colour: [colour >> k for k in range(11)] for colour in (dark, light)}
    penalty = 0
    for colour in (dark, light):
        # Rule 1: a run of L ≥ 5 scores L - 2: its L - 4 windows of five, and 2 for the run.
        windows = functools.reduce(operator.and_, shifted[colour][:5]) & layout.after[4]
        starts = windows & ~(windows >> 1)
        penalty += windows.bit_count() + 2 * starts.bit_count()
    for pattern in _FINDER_LIKE:
        found = layout.after[10]  # at the pattern's last module; its i-th module is 10 - i to the left
        for i, module in enumerate(pattern):
            found &= shifted[dark if module == "1" else light][10 - i]
        penalty += 40 * found.bit_count()
    return penalty


def _penalty(rows: int, columns: int, layout: _Layout) -> int:
    """The standard's mask penalty (rules 1 to 4), as qrcode's `util.lost_point` scores it."""
    n = layout.size
    # Rule 2: 2×2 blocks of one colour: a module equal to its left and upper neighbours, and the
    # upper one equal to its own left neighbour.
    same_left = layout.full ^ (rows ^ (rows >> 1))
    same_up = layout.full ^ (rows ^ (rows >> n))
    blocks = same_left & same_up & (same_left >> n) & layout.after[1] & (layout.full >> n)
    percent = float(rows.bit_count()) / (n * n)
    balance = int(abs(percent * 100 - 50) / 5) * 10  # rule 4, in qrcode's own arithmetic
    return _line_penalty(rows, layout) + _line_penalty(columns, layout) + 3 * blocks.bit_count() + balance


def qr_symbol(data: str) -> QrSymbol:
    """The QR symbol of `data` at level M, the smallest version that holds it (modes mixed by
    qrcode, so an upper-case token is packed as alphanumerics), with the mask of least penalty
    scored on the whole symbol, format information included (as the standard and ZXing do;
    qrcode scores before writing it, so it may pick another mask).

    For each mask, qrcode makes the same symbol (the tests compare them), in 10 ms a code, 20 s
    for 2,000 cards: its encoder works bit by bit in Python and it builds the whole symbol once
    per mask. Here the codewords are computed on integers, the bits placed once through a
    precomputed permutation, and each mask is an XOR and a few shifts: about 1 ms."""
    segments = list(qrcode.util.optimal_data_chunks(data, minimum=20))  # as QRCode.add_data
    payloads = _segment_bits(segments)
    version = _fit(segments, payloads)
    layout = _layout(version)
    bits = "".join(_BYTE_BITS[word] for word in _codewords(version, segments, payloads))
    bits = bits[: layout.data_modules]
    bits = bits.ljust(layout.data_modules, "0") + "0"
    rows, columns = int("".join(layout.gather(bits)), 2), int("".join(layout.gather_columns(bits)), 2)
    candidates = [
        (masked_rows ^ rows, masked_columns ^ columns) for masked_rows, masked_columns in layout.masked
    ]
    best, _columns = min(candidates, key=lambda symbol: _penalty(*symbol, layout))
    n = layout.size
    text = format(best, f"0{n * n}b")
    return QrSymbol(version=version, rows=tuple(text[i : i + n] for i in range(0, n * n, n)))


# --- The font -------------------------------------------------------------------------------------


class CardFontMissing(ImproperlyConfigured):
    """The server cannot print cards: the Chinese font of CARD_FONT_PATH is missing or unusable."""


@functools.cache
def _registered_font(path: str) -> str:
    if not Path(path).is_file():
        raise CardFontMissing(
            f"The voucher cards need a Chinese TrueType font, and CARD_FONT_PATH ({path}) is no "
            f"file: install the Debian package {FONT_PACKAGE} (apt-get install {FONT_PACKAGE}) "
            "or set CARD_FONT_PATH to such a font."
        )
    name = f"CardFont{len(pdfmetrics.getRegisteredFontNames())}"
    try:
        # subfontIndex 0: the first face of a collection (.ttc), e.g. WenQuanYi Micro Hei itself.
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=0))
    except (TTFError, OSError) as error:
        raise CardFontMissing(
            f"CARD_FONT_PATH ({path}) is not a TrueType font that can be embedded ({error}): use "
            f"the Debian package {FONT_PACKAGE}'s wqy-microhei.ttc."
        ) from error
    return name


def card_font() -> str:
    """The registered name of CARD_FONT_PATH's font; CardFontMissing, naming the setting and the
    Debian package, when it cannot be used."""
    return _registered_font(str(settings.CARD_FONT_PATH))


# --- The cards ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """What one card shows: nothing personal beyond the masked name."""

    url: str
    masked_name: str
    community: str
    month: str
    tier: str
    face_value: Decimal
    contacts: VoucherContacts


def cards_for(vouchers: Iterable) -> list[Card]:
    """One card per voucher, in the given order, in the installation's language (the card is the
    senior's, whatever the language of the worker's pages). The vouchers come with their senior,
    community and tier (`selectors.vouchers_to_print`); the contacts take a query per community."""
    vouchers = list(vouchers)
    with translation.override(settings.LANGUAGE_CODE):
        contacts = contacts_for_vouchers(vouchers)
        return [
            Card(
                url=tokens.voucher_url(voucher),
                masked_name=voucher.senior.masked_name,
                community=name_in_language(voucher.senior.community),
                month=formats.date_format(voucher.period, "YEAR_MONTH_FORMAT"),
                tier=name_in_language(voucher.tier),
                face_value=voucher.face_value.amount,
                contacts=contacts[voucher.pk],
            )
            for voucher in vouchers
        ]


# The sheet: 2 × 3 cards of 96 × 90 mm on A4, 6 mm apart, cut marks at every card's corners.
COLUMNS, ROWS = 2, 3
CARDS_PER_PAGE = COLUMNS * ROWS
CARD_WIDTH, CARD_HEIGHT = 96 * mm, 90 * mm
GAP = 6 * mm
MARGIN_X = (A4[0] - COLUMNS * CARD_WIDTH - (COLUMNS - 1) * GAP) / 2
MARGIN_Y = (A4[1] - ROWS * CARD_HEIGHT - (ROWS - 1) * GAP) / 2
MARK_OFFSET, MARK_LENGTH = 0.8 * mm, 2.2 * mm  # within half the gap: neighbours' marks never touch
PAD = 4 * mm
BAND_INSET, BAND_HEIGHT = 2.5 * mm, 11 * mm  # inset: a cut slightly off leaves no sliver of colour
QR_WIDTH = 42 * mm  # the symbol without its quiet zone, which the card's white space provides
QUIET = 4 * mm  # at least four modules of the largest symbol a card needs (version 10: 57 modules)
QR_TOP = CARD_HEIGHT - BAND_INSET - BAND_HEIGHT - QUIET
COLUMN_LEFT = PAD + QR_WIDTH + QUIET  # beside the QR code: who, which tier, how much
COLUMN_ROOM = CARD_WIDTH - PAD - COLUMN_LEFT
RULE = QR_TOP - QR_WIDTH - 3.5 * mm  # above whom to call
LABEL_SIZE = 10

BRAND = HexColor("#0b5566")
TEXT = HexColor("#1b1f23")
MUTED = HexColor("#4a5561")
LINE = HexColor("#c9d1d9")


def _column(sizes: Sequence[float]) -> list[tuple[float, float]]:
    """(label baseline, value baseline) of each line of the column, for values of `sizes` pt."""
    lines, y = [], QR_TOP
    for size in sizes:
        label = y - 3.4 * mm
        value = label - size * 0.3528 * mm * 0.9 - 0.8 * mm
        lines.append((label, value))
        y = value - 1.8 * mm
    return lines


NAME_SIZE, TIER_SIZE, VALUE_SIZE = 28, 20, 26
(_NAME_LABEL, NAME_LINE), (_TIER_LABEL, TIER_LINE), (_VALUE_LABEL, VALUE_LINE) = _column(
    (NAME_SIZE, TIER_SIZE, VALUE_SIZE)
)


# A company's legal form, which nobody says on the phone: 康乐居家养老服务有限公司 -> 康乐居家养老服务.
_LEGAL_FORM = re.compile(r"(股份有限公司|有限责任公司|有限公司)$")


def _spoken(name: str) -> str:
    return _LEGAL_FORM.sub("", name) or name


def _slot(index: int) -> tuple[float, float]:
    """The lower-left corner of the card at `index` on its page, row by row from the top."""
    row, column = divmod(index % CARDS_PER_PAGE, COLUMNS)
    x = MARGIN_X + column * (CARD_WIDTH + GAP)
    y = A4[1] - MARGIN_Y - (row + 1) * CARD_HEIGHT - row * GAP
    return x, y


class _Sheet:
    """A canvas with the card font and the few drawing moves a card needs, in card coordinates
    (the card's lower-left corner at 0, 0)."""

    def __init__(self, canvas: Canvas, font: str, labels: dict):
        self.canvas = canvas
        self.font = font
        self.labels = labels
        self.forms = {}

    def width(self, text: str, size: float) -> float:
        return pdfmetrics.stringWidth(text, self.font, size)

    def fitted(self, text: str, size: float, room: float, smallest: float) -> float:
        """`size`, or smaller down to `smallest`, so that `text` fits in `room`."""
        width = self.width(text, size)
        return size if width <= room else max(smallest, size * room / width)

    def shortened(self, text: str, size: float, room: float, smallest: float) -> tuple[str, float]:
        """(text, size) that fit in `room`: smaller down to `smallest`, then cut with an ellipsis."""
        size = self.fitted(text, size, room, smallest)
        while len(text) > 1 and self.width(text, size) > room:
            text = text[:-2] + "…"
        return text, size

    def text(self, x, y, text, size, *, colour=TEXT, bold=False, align="left"):
        canvas = self.canvas
        if align == "right":
            x -= self.width(text, size)
        out = canvas.beginText(x, y)
        out.setFont(self.font, size)
        out.setFillColor(colour)
        if bold:  # the font has one weight: outline the glyphs in their own colour
            canvas.setStrokeColor(colour)
            canvas.setLineWidth(size / 30)
            out.setTextRenderMode(2)
        out.textOut(text)
        if bold:
            out.setTextRenderMode(0)  # the mode outlives the text object: back to plain fill
        canvas.drawText(out)

    def form(self, key, draw) -> str:
        """The name of a PDF form drawn once by `draw()` for every card that shares `key`."""
        name = self.forms.get(key)
        if name is None:
            name = self.forms[key] = f"card{len(self.forms)}"
            margin = MARK_OFFSET + MARK_LENGTH
            self.canvas.beginForm(name, -margin, -margin, CARD_WIDTH + margin, CARD_HEIGHT + margin)
            draw()
            self.canvas.endForm()
        return name

    def qr(self, symbol: QrSymbol, x: float, top: float, width: float):
        """The symbol's dark modules as one filled path of row runs (no seams between modules).

        Written as PDF operators in module units: reportlab's path objects format every number
        in Python, which for 2,000 cards of about 500 runs each took seconds."""
        canvas = self.canvas
        canvas.saveState()
        canvas.translate(x, top)
        module = width / symbol.size
        canvas.scale(module, -module)  # module units, rows downwards
        canvas.setFillColor(TEXT)
        runs = [
            f"{start} {row} {end - start} 1 re"
            for row, line in enumerate(symbol.rows)
            for start, end in (run.span() for run in _DARK_RUN.finditer(line))
        ]
        canvas.addLiteral("\n".join(runs) + "\nf")
        canvas.restoreState()

    # What every card of one month and community shows: the band, the labels, whom to call.

    def frame(self, card: Card):
        canvas, labels = self.canvas, self.labels
        right = CARD_WIDTH - PAD
        canvas.setFillColor(BRAND)
        band = CARD_HEIGHT - BAND_INSET - BAND_HEIGHT
        canvas.roundRect(BAND_INSET, band, CARD_WIDTH - 2 * BAND_INSET, BAND_HEIGHT, 2 * mm, stroke=0, fill=1)
        baseline = band + BAND_HEIGHT / 2 - 2.2 * mm
        self.text(PAD, baseline + 0.4 * mm, labels["title"], 13, colour=white, bold=True)
        self.text(right, baseline, card.month, 19, colour=white, bold=True, align="right")
        for label, y in (
            (labels["holder"], _NAME_LABEL),
            (labels["tier"], _TIER_LABEL),
            (labels["value"], _VALUE_LABEL),
        ):
            self.text(COLUMN_LEFT, y, label, LABEL_SIZE, colour=MUTED)
        canvas.setStrokeColor(LINE)
        canvas.setLineWidth(0.6)
        canvas.line(PAD, RULE, right, RULE)
        self.contacts(card, top=RULE, bottom=PAD - 0.5 * mm)
        self.cut_marks()

    def contacts(self, card: Card, *, top: float, bottom: float):
        labels, contacts = self.labels, card.contacts
        left, right = PAD, CARD_WIDTH - PAD
        # The community first, with its contact (a community may not have named one yet).
        rows = [(labels["community"], card.community, contacts.worker_phone)]
        hotlines = [provider for provider in contacts.providers if provider.phone]
        for size in (13, 12, 11):
            line_height = size * 0.3528 * mm * 1.32
            fits = int((top - bottom - 1 * mm) // line_height)
            if len(rows) + len(hotlines) <= fits:
                break
        # Too many to list: as many as fit, then a line that says where to ask for the others.
        shown = hotlines if len(rows) + len(hotlines) <= fits else hotlines[: max(fits - len(rows) - 1, 0)]
        rows += [(labels["hotline"] if i == 0 else "", _spoken(p.name), p.phone) for i, p in enumerate(shown)]
        label_room = max(self.width(labels["community"], 10), self.width(labels["hotline"], 10)) + 2.5 * mm
        line = top
        for index, (label, name, phone) in enumerate(rows):
            line -= line_height
            self.text(left, line + 0.3 * mm, label, LABEL_SIZE, colour=MUTED)
            self.text(right, line, phone, size, bold=True, align="right")
            room = right - left - label_room - self.width(phone, size) - 1.5 * mm
            # The contact's name after the community's, which gives way first when there is no room.
            person = f" {contacts.worker_name}" if index == 0 and contacts.worker_name else ""
            # Smaller before shorter: the whole name is what the senior recognises.
            name, name_size = self.shortened(name, size, room - self.width(person, 9), 9)
            self.text(left + label_room, line, name + person, self.fitted(name + person, name_size, room, 9))
        if len(shown) < len(hotlines):
            line -= line_height
            self.text(left + label_room, line, labels["more"], 10.5, colour=MUTED)

    def cut_marks(self):
        canvas = self.canvas
        canvas.setStrokeColor(TEXT)
        canvas.setLineWidth(0.4)
        lines = []
        for x, dx in ((0, -1), (CARD_WIDTH, 1)):
            for y, dy in ((0, -1), (CARD_HEIGHT, 1)):
                start, end = MARK_OFFSET, MARK_OFFSET + MARK_LENGTH
                lines.append((x + dx * start, y, x + dx * end, y))  # in line with the horizontal edge
                lines.append((x, y + dy * start, x, y + dy * end))  # in line with the vertical edge
        canvas.lines(lines)

    def tier(self, card: Card):
        self.text(COLUMN_LEFT, TIER_LINE, card.tier, self.fitted(card.tier, TIER_SIZE, COLUMN_ROOM, 12))
        value = f"¥{card.face_value:.2f}"
        self.text(COLUMN_LEFT, VALUE_LINE, value, self.fitted(value, VALUE_SIZE, COLUMN_ROOM, 16), bold=True)

    def card(self, card: Card, x: float, y: float):
        contacts = card.contacts
        shared = (
            card.month,
            card.community,
            contacts.worker_name,
            contacts.worker_phone,
            *contacts.providers,
        )
        frame = self.form(("frame", *shared), lambda: self.frame(card))
        tier = self.form(("tier", card.tier, card.face_value), lambda: self.tier(card))
        canvas = self.canvas
        canvas.saveState()
        canvas.translate(x, y)
        canvas.doForm(frame)
        canvas.doForm(tier)
        name_size = self.fitted(card.masked_name, NAME_SIZE, COLUMN_ROOM, 16)
        self.text(COLUMN_LEFT, NAME_LINE, card.masked_name, name_size, bold=True)
        self.qr(qr_symbol(card.url), PAD, QR_TOP, QR_WIDTH)
        canvas.restoreState()


def render_cards(cards: Sequence[Card], out, *, title: str = "") -> int:
    """Write the cards as an A4 PDF to the binary file `out`, six to a page in the given order,
    with the font embedded; the number of cards. CardFontMissing when the font is unusable."""
    if not cards:
        raise ValueError("no cards to render")
    font = card_font()
    with translation.override(settings.LANGUAGE_CODE):
        labels = {
            "title": _("Home-care service card"),
            "holder": _("Card holder"),
            "tier": _("Tier"),
            "value": _("Value this month"),
            "community": _("Community"),
            "hotline": _("Service hotlines"),
            "more": _("More providers: ask your community."),
        }
        canvas = Canvas(out, pagesize=A4, pageCompression=1, invariant=1)
        canvas.setTitle(title or labels["title"])
        canvas.setCreator("homecare")
        sheet = _Sheet(canvas, font, labels)
        for index, card in enumerate(cards):
            if index and index % CARDS_PER_PAGE == 0:
                canvas.showPage()
            sheet.card(card, *_slot(index))
        canvas.showPage()
        canvas.save()
    return len(cards)
