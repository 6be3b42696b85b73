import io
import threading
from datetime import UTC, datetime, timedelta

from django.test import TestCase
from django.utils import timezone
from openpyxl import load_workbook

from robots.models import Robot
from robots.tests.report import ReportTestCase, by_model, read_report, sheet
from robots.utils import (
    HEADER,
    _write_atomically,
    create_production_list,
    describe_window,
    get_difference_datetime_from_today,
    render_production_list,
    weekly_window,
)


class WindowTests(TestCase):
    def test_the_window_starts_seven_days_of_24_hours_before_now(self):
        now = datetime(2024, 3, 31, 12, tzinfo=UTC)
        self.assertEqual(
            get_difference_datetime_from_today(days=7, now=now),
            datetime(2024, 3, 24, 12, tzinfo=UTC),
        )

    def test_the_start_is_an_aware_moment_a_week_ago(self):
        start = get_difference_datetime_from_today()
        self.assertTrue(timezone.is_aware(start))
        self.assertAlmostEqual(
            start, timezone.now() - timedelta(days=7), delta=timedelta(seconds=5)
        )


class CreateProductionListTests(ReportTestCase):
    def test_it_writes_one_sheet_per_model_with_counts_by_version(self):
        self.produce("X5", "LT", 1)
        self.produce("R2", "D2", 3)
        self.produce("R2", "A1", 2)
        self.produce("13", "XS", 4)

        report = read_report(create_production_list(Robot.objects.all(), weekly_window()))

        self.assertEqual(list(report), ["Итого", "13", "R2", "X5"])
        week, header, *rows, total = report["Итого"]
        self.assertEqual(week, (describe_window(weekly_window()), None))
        self.assertEqual(header, ("Робот", "Количество за неделю"))
        self.assertEqual(rows, [("13-XS", 4), ("R2-A1", 2), ("R2-D2", 3), ("X5-LT", 1)])
        self.assertEqual(total, ("Итого", 10))
        tables = by_model(create_production_list(Robot.objects.all(), weekly_window()))
        self.assertEqual(tables["13"], sheet(("13", "XS", 4)))
        self.assertEqual(tables["R2"], sheet(("R2", "A1", 2), ("R2", "D2", 3)))
        self.assertEqual(tables["X5"], sheet(("X5", "LT", 1)))
        # Each model sheet says its week on its first line, beside the table's header.
        self.assertEqual(report["R2"][0][4], describe_window(weekly_window()))

    def test_it_counts_only_the_selection_it_is_given(self):
        self.produce("R2", "D2", 2)
        self.produce("R2", "A1", 1)

        report = create_production_list(Robot.objects.filter(version__name="D2"))

        self.assertEqual(by_model(report), {"R2": sheet(("R2", "D2", 2))})

    def test_a_week_without_production_is_a_sheet_that_says_so(self):
        report = read_report(create_production_list(Robot.objects.none()))

        [(title, rows)] = report.items()
        self.assertEqual(title, "Итого")
        self.assertEqual(rows[1], ("Робот", "Количество за неделю"))
        self.assertIn("не производились", rows[2][0])
        self.assertEqual(rows[-1], ("Итого", 0))

    def test_the_sheets_are_ready_to_read(self):
        self.produce("R2", "D2", 3)
        self.produce("R2", "A1", 2)

        book = load_workbook(io.BytesIO(create_production_list(Robot.objects.all())))
        sheet = book["R2"]

        self.assertTrue(all(cell.font.b for cell in sheet[1]))
        # Header cells filled and bordered, as a table's head reads at a glance.
        self.assertTrue(all(cell.fill.fgColor.rgb.endswith("DDE4EE") for cell in sheet[1]))
        self.assertTrue(all(cell.border.bottom.style == "thin" for cell in sheet[1]))
        self.assertEqual(sheet.freeze_panes, "A2")
        self.assertGreaterEqual(sheet.column_dimensions["C"].width, len(HEADER[2]))
        [chart] = sheet._charts
        self.assertEqual(chart.y_axis.scaling.min, 0)
        self.assertEqual(sheet["C2"].data_type, "n")

    def test_a_catalog_name_that_starts_with_equals_stays_text(self):
        # The database refuses such names; the report must not trust that.
        sheet = load_workbook(io.BytesIO(render_production_list([("=1-=2", 1)])))["=1"]

        self.assertEqual((sheet["A2"].value, sheet["A2"].data_type), ("=1", "s"))
        self.assertEqual((sheet["B2"].value, sheet["B2"].data_type), ("=2", "s"))

    def test_it_keeps_a_copy_of_what_it_returns_in_the_report_folder(self):
        self.produce("R2", "D2")

        content = create_production_list(Robot.objects.all())

        self.assertEqual((self.folder / "robots_list.xlsx").read_bytes(), content)
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["robots_list.xlsx"])


class AtomicWriteTests(ReportTestCase):
    def test_a_reader_never_finds_a_half_written_report(self):
        payloads = [bytes([n]) * 2_000_000 for n in (1, 2)]
        _write_atomically(self.folder, "robots_list.xlsx", payloads[0])
        seen = []

        def write(payload):
            for _ in range(15):
                _write_atomically(self.folder, "robots_list.xlsx", payload)

        writers = [threading.Thread(target=write, args=(p,)) for p in payloads]
        for writer in writers:
            writer.start()
        while any(writer.is_alive() for writer in writers):
            seen.append((self.folder / "robots_list.xlsx").read_bytes())
        for writer in writers:
            writer.join()

        self.assertTrue(seen)
        self.assertTrue(all(content in payloads for content in seen))
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["robots_list.xlsx"])

    def test_a_failed_write_keeps_the_last_report_and_leaves_no_litter(self):
        _write_atomically(self.folder, "robots_list.xlsx", b"last week")

        with self.assertRaises(TypeError):
            _write_atomically(self.folder, "robots_list.xlsx", None)

        self.assertEqual((self.folder / "robots_list.xlsx").read_bytes(), b"last week")
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["robots_list.xlsx"])
