"""Reading what people type as the registry stores it: ID-card numbers, phones, text.

Pure functions (no database), shared by the services, the import and the registry's search.
Each refusal is an `EligibilityError` with its code and the field it is about.
"""

import datetime as dt
import re

from django.utils.translation import gettext_lazy as _
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength
from stdnum.exceptions import ValidationError as StdnumValidationError

from eligibility.errors import EligibilityError
from eligibility.models import PHONE_PATTERN

ID_CARD_REASONS = {
    InvalidLength: _("The ID-card number must have 18 characters (or 15 for an old card)."),
    InvalidFormat: _("The ID-card number must be 17 digits followed by a digit or X."),
    InvalidChecksum: _("The ID-card number's check digit is wrong; please check it for a typing error."),
    InvalidComponent: _("The ID-card number holds an impossible birth date or region code."),
    StdnumValidationError: _("The ID-card number is not valid."),
}
_FULL_WIDTH = str.maketrans("０１２３４５６７８９ｘＸ－（）　", "0123456789xX-() ")


def normalise_text(raw) -> str:
    """Full-width digits and letters to ASCII, stray spaces (inner runs too) trimmed."""
    return " ".join(str(raw or "").translate(_FULL_WIDTH).split())


def _from_legacy(number: str) -> str:
    """A 15-digit card of before 1999 (6 region + YYMMDD + 3 sequence) as its 18-digit number."""
    body = f"{number[:6]}19{number[6:]}"
    return body + ric.calc_check_digit(body + "0")


def normalise_id_card_number(raw: str) -> str:
    """Validate a resident ID (GB 11643 check digit, birth date, region) and normalise it.

    Full-width digits and spaces are normalised; a 15-digit legacy number is converted to its
    18-digit form. Refuses with `invalid_id_card_number`; the message never repeats the number.
    """
    number = normalise_text(raw).replace(" ", "").upper()
    try:
        if len(number) == 15 and number.isdigit():
            ric.get_birth_date("".join((number[:6], "19", number[6:], "0")))  # a real date?
            number = _from_legacy(number)
        return ric.validate(number).upper()
    except StdnumValidationError as error:
        reason = ID_CARD_REASONS.get(type(error), ID_CARD_REASONS[StdnumValidationError])
        raise EligibilityError("invalid_id_card_number", reason) from None


def normalise_phone(raw, *, field: str = "phone") -> str:
    """A mainland mobile (11 digits) or a landline with its area code, stored as 0571-87061234;
    or blank. Spaces, dashes, brackets, +86 and full-width digits are accepted. Refuses
    `invalid_phone`."""
    phone = re.sub(r"[\s()\-]", "", normalise_text(raw))
    if phone.startswith("+86"):
        phone = phone[3:]
    if not phone:
        return ""
    if phone.startswith("0") and phone.isdigit():
        area = 3 if phone[1] in "12" else 4  # 010 and 02x are the three-digit area codes
        phone = f"{phone[:area]}-{phone[area:]}"
    if not re.fullmatch(PHONE_PATTERN, phone):
        raise EligibilityError(
            "invalid_phone",
            _("A phone number is 11 digits for a mobile, or the area code and number for a landline."),
            field=field,
        )
    return phone


def birth_date_of(number: str) -> dt.date:
    """The birth date written in a normalised (valid, 18-character) ID-card number."""
    return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def sex_of(number: str) -> str:
    """'M' or 'F' (Senior.Sex) from a normalised ID-card number: its 17th character is odd for men."""
    return "M" if number[16] in "13579" else "F"
