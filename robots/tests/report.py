"""Reading the weekly report back, as a manager's spreadsheet program would."""

import io

from openpyxl import load_workbook


def read_report(content: bytes) -> dict[str, list[tuple]]:
    """{sheet title: rows as tuples of values}."""
    workbook = load_workbook(io.BytesIO(content))
    return {
        sheet.title: [tuple(row) for row in sheet.iter_rows(values_only=True)]
        for sheet in workbook.worksheets
    }
