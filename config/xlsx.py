"""What every Excel export of the project shares: text that looks like a formula stays text.

A pure module (no Django): the settlement and registry exports both write their cells through
`safe_text`, so a name such as "=HYPERLINK(…)" never becomes a link or a command (DESIGN.md §6.8).
"""

# Characters that make a spreadsheet read a cell as a formula (or a DDE command).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value):
    """Text as a spreadsheet will show it, never as a formula: '=1+1' becomes "'=1+1".

    The leading apostrophe is the OWASP-recommended neutraliser (CSV/formula injection). Anything
    that is not text is returned unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
