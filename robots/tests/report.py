"""Reading the weekly report back, as a manager's spreadsheet program would."""

import io

from openpyxl import load_workbook

from robots.utils import HEADER, SUMMARY


def read_report(content: bytes) -> dict[str, list[tuple]]:
    """{sheet title: rows as tuples of values}."""
    workbook = load_workbook(io.BytesIO(content))
    return {
        sheet.title: [tuple(row) for row in sheet.iter_rows(values_only=True)]
        for sheet in workbook.worksheets
    }


def by_model(content: bytes) -> dict[str, list[tuple]]:
    """The models' sheets, without the summary "Итого" that comes first."""
    sheets = read_report(content)
    assert next(iter(sheets)) == SUMMARY, list(sheets)
    return {title: rows for title, rows in sheets.items() if title != SUMMARY}


def sheet(*rows: tuple) -> list[tuple]:
    """A model's sheet as the report writes it: the header, a row a version, the total."""
    return [HEADER, *rows, (SUMMARY, None, sum(row[2] for row in rows))]
