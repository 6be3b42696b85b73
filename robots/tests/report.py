"""Reading the weekly report back, as a manager's spreadsheet program would."""

import io
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from django.test import TestCase, override_settings
from openpyxl import load_workbook

from robots.models import Model, Robot, Version
from robots.utils import HEADER, SUMMARY


def read_report(content: bytes) -> dict[str, list[tuple]]:
    """{sheet title: rows as tuples of values}."""
    workbook = load_workbook(io.BytesIO(content))
    return {
        sheet.title: [tuple(row) for row in sheet.iter_rows(values_only=True)]
        for sheet in workbook.worksheets
    }


def by_model(content: bytes) -> dict[str, list[tuple]]:
    """The models' sheets' tables (their columns A to C; the week is beside them, in E1),
    without the summary "Итого" that comes first."""
    sheets = read_report(content)
    assert next(iter(sheets)) == SUMMARY, list(sheets)
    return {
        title: [row[: len(HEADER)] for row in rows]
        for title, rows in sheets.items()
        if title != SUMMARY
    }


def sheet(*rows: tuple) -> list[tuple]:
    """A model's sheet as the report writes it: the header, a row a version, the total."""
    return [HEADER, *rows, (SUMMARY, None, sum(row[2] for row in rows))]


MONDAY = datetime(2023, 10, 2, 12, tzinfo=UTC)


class ReportTestCase(TestCase):
    def setUp(self):
        folder = TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.folder = Path(folder.name)
        settings = override_settings(PRODUCTION_LIST_DIR=self.folder)
        settings.enable()
        self.addCleanup(settings.disable)

    def produce(self, model: str, version: str, count: int = 1, created=MONDAY) -> None:
        model_obj, _ = Model.objects.get_or_create(name=model)
        version_obj, _ = Version.objects.get_or_create(model=model_obj, name=version)
        for _ in range(count):
            Robot.objects.create(model=model_obj, version=version_obj, created=created)
