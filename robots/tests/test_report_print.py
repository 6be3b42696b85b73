"""The weekly workbook as the director prints it: LibreOffice renders it to PDF."""

import io
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.test import SimpleTestCase
from openpyxl import load_workbook
from pypdf import PdfReader

from R4C.tests.browser import SCREENSHOTS, need
from robots.utils import render_production_list

pytestmark = pytest.mark.slow

WINDOW = (datetime(2026, 11, 19, 9, tzinfo=UTC), datetime(2026, 11, 26, 9, tzinfo=UTC))
COUNTS = [("13-XS", 4), ("R2-A1", 12), ("R2-B7", 3), ("R2-D2", 40), ("R2-Z9", 1)]


class ReportPrintTests(SimpleTestCase):
    def test_each_sheet_with_its_chart_prints_on_one_landscape_page(self):
        need("soffice")
        content = render_production_list(COUNTS, WINDOW)
        with tempfile.TemporaryDirectory() as folder:
            workbook = Path(folder) / "robots_list.xlsx"
            workbook.write_bytes(content)
            # A profile of its own: a LibreOffice already running for the user is left alone.
            subprocess.run(
                ["soffice", f"-env:UserInstallation=file://{folder}/profile", "--headless",
                 "--convert-to", "pdf", "--outdir", folder, str(workbook)],
                check=True, capture_output=True, timeout=180,
            )  # fmt: skip
            pdf = (Path(folder) / "robots_list.pdf").read_bytes()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS.parent / "robots_list.pdf").write_bytes(pdf)

        pages = PdfReader(io.BytesIO(pdf)).pages
        self.assertEqual(len(pages), 2)  # one a sheet: 13 and R2, each chart whole
        for page in pages:
            self.assertGreater(page.mediabox.width, page.mediabox.height)  # landscape
        for page, model in zip(pages, ("13", "R2"), strict=True):
            text = page.extract_text()
            # The table and its whole chart on the same page, and the week in its header.
            self.assertIn("Модель Версия Количество за неделю", text)
            self.assertIn(f"{model}: количество за неделю", text)
            self.assertIn("Неделя: с 19.11.2026 09:00 по", text)

    def test_header_and_data_share_one_font(self):
        sheet = load_workbook(io.BytesIO(render_production_list(COUNTS, WINDOW)))["R2"]
        fonts = {(cell.font.name, cell.font.sz) for row in sheet.iter_rows() for cell in row}
        self.assertEqual(len(fonts), 1, fonts)
        self.assertTrue(all(cell.font.bold for cell in sheet[1]))
