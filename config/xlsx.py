"""What every Excel export of the project shares: text that looks like a formula stays text.

The settlement and registry exports write their cells through `text_cell`, so a name such as
"=HYPERLINK(…)" never becomes a link or a command (DESIGN.md §6.8), yet reads exactly as it was
typed and imports back unchanged.
"""

# Characters that make a spreadsheet read a cell as a formula (or a DDE command).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def looks_like_a_formula(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def text_cell(sheet, value):
    """A write-only cell of `value`; text that looks like a formula is stored as a string cell
    with Excel's quote prefix (what typing '=1+1 in Excel does): shown as =1+1, never evaluated,
    not even when someone edits the cell, and no apostrophe added to the data."""
    # Imported here: the registry import uses this module too, and keeps openpyxl out of memory
    # while it reads a workbook (its peak is there).
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    if looks_like_a_formula(value):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell
