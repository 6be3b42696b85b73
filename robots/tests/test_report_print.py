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


def content_spans(pdf: bytes) -> list[tuple[float, float]]:
    """Each page's inked area as a share of the page's width and height (pdftoppm, 30 dpi;
    the page's margins count against it, so 0.7 of the page is more of the printable area)."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "report.pdf").write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", "30", "-gray", str(Path(folder) / "report.pdf"), f"{folder}/p"],
            check=True, timeout=60,
        )  # fmt: skip
        spans = []
        for image in sorted(Path(folder).glob("p-*.pgm")):
            _magic, size, _depth, data = image.read_bytes().split(b"\n", 3)
            width, height = map(int, size.split())
            inked = [i for i, value in enumerate(data[: width * height]) if value < 200]
            rows = [i // width for i in inked]
            columns = [i % width for i in inked]
            spans.append(((max(columns) - min(columns)) / width, (max(rows) - min(rows)) / height))
        return spans


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
        self.assertEqual(len(pages), 3)  # one a sheet: Итого, 13 and R2, each chart whole
        for page in pages:
            self.assertGreater(page.mediabox.width, page.mediabox.height)  # landscape
        for page, title in zip(pages, ("Итого", "13", "R2"), strict=True):
            text = page.extract_text()
            header = "Робот" if title == "Итого" else "Модель Версия"
            self.assertIn(f"{header} Количество за неделю", text)
            self.assertEqual(text.count("Неделя: с 19.11.2026 09:00 по"), 1)  # once, one line
            self.assertIn("Итого", text)
            self.assertIn(f"{title}: количество за неделю", text)  # the chart, whole
        # The table and the chart fill the page, not its top half.
        need("pdftoppm")
        for number, (width, height) in enumerate(content_spans(pdf), start=1):
            with self.subTest(page=number):
                self.assertGreaterEqual(height, 0.7)
                self.assertGreaterEqual(width, 0.7)

    def test_each_sheet_says_its_week_on_its_first_line(self):
        workbook = load_workbook(io.BytesIO(render_production_list(COUNTS, WINDOW)))
        for sheet in workbook:
            with self.subTest(sheet=sheet.title):
                first = [cell.value for cell in sheet[1] if cell.value]
                self.assertTrue(
                    any(str(v).startswith("Неделя: с 19.11.2026 09:00") for v in first)
                )
        # On a model sheet the table's rows are still the table's: its header is row 1.
        self.assertEqual([c.value for c in workbook["R2"][1][:3]], ["Модель", "Версия",
                         "Количество за неделю"])  # fmt: skip

    def test_header_and_data_share_one_font(self):
        sheet = load_workbook(io.BytesIO(render_production_list(COUNTS, WINDOW)))["R2"]
        fonts = {(cell.font.name, cell.font.sz) for row in sheet.iter_rows() for cell in row}
        self.assertEqual(len(fonts), 1, fonts)
        self.assertTrue(all(cell.font.bold for cell in sheet[1][:3]))  # the table's header
