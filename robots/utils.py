"""The director's weekly production report."""

import io
import logging
import os
import re
import tempfile
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.styles.fonts import DEFAULT_FONT
from openpyxl.worksheet.worksheet import Worksheet

from robots.models import Robot

log = logging.getLogger(__name__)

SERIAL = re.compile(r"[0-9A-Z]{2}-[0-9A-Z]{2}")
REPORT_NAME = "robots_list.xlsx"
HEADER = ("Модель", "Версия", "Количество за неделю")
NO_PRODUCTION = "За эту неделю роботы не производились."
COLUMN_WIDTHS = (10, 10, 24)
# The data's own font, bold: a bold Font without a name renders in another typeface.
HEADER_FONT = Font(
    name=DEFAULT_FONT.name,
    sz=DEFAULT_FONT.sz,
    family=DEFAULT_FONT.family,
    scheme=DEFAULT_FONT.scheme,
    bold=True,
)
# Printed, a sheet is its table and its chart (anchored at E2) on one landscape A4 page.
PRINT_AREA_COLUMNS = "A:N"
PRINT_AREA_MIN_ROWS = 18

Window = tuple[datetime, datetime]


def get_difference_datetime_from_today(days: int = 7, now: datetime | None = None) -> datetime:
    """The start of a window of `days` × 24 hours that ends now (an aware datetime)."""
    return (now or timezone.now()) - timedelta(days=days)


def weekly_window(now: datetime | None = None) -> Window:
    """The report's window: the 7 × 24 hours that end now."""
    now = now or timezone.now()
    return get_difference_datetime_from_today(days=7, now=now), now


def robots_in(window: Window) -> QuerySet[Robot]:
    start, end = window
    return Robot.objects.filter(created__gte=start, created__lte=end)


def describe_window(window: Window) -> str:
    """The window as the director reads it, in the factory's time zone."""
    start, end = (timezone.localtime(moment).strftime("%d.%m.%Y %H:%M") for moment in window)
    return f"Неделя: с {start} по {end} ({timezone.get_current_timezone_name()})"


def count_by_serial(robots: QuerySet[Robot]) -> list[tuple[str, int]]:
    """(serial, how many) for the selection, ordered by model then version.

    One grouped query, counted by the database: the index on (created, serial) serves both
    the window and the grouping, so no robot is loaded into Python. A serial is
    MODEL-VERSION with two-character names, so ordering by it orders by model, then version.
    """
    rows = robots.order_by().values("serial").annotate(count=Count("*")).order_by("serial")
    counts = []
    for row in rows:
        if SERIAL.fullmatch(row["serial"]):
            counts.append((row["serial"], row["count"]))
        else:  # written before the database checked serials: one row must not break the report
            log.error("report: left out %d robots with the malformed serial %r",
                      row["count"], row["serial"])  # fmt: skip
    return counts


def create_production_list(robots: QuerySet[Robot], window: Window | None = None) -> bytes:
    """Build the report for the selection, keep a copy in production_list/, return its bytes.

    With `window`, each sheet says which week it covers.
    """
    content = render_production_list(count_by_serial(robots), window)
    try:
        _write_atomically(settings.PRODUCTION_LIST_DIR, REPORT_NAME, content)
    except OSError as error:
        # A full disk or an unwritable folder costs the copy, not the director's download.
        log.error(
            "could not keep a copy of the report in %s: %s", settings.PRODUCTION_LIST_DIR, error
        )
    return content


def render_production_list(counts: list[tuple[str, int]], window: Window | None = None) -> bytes:
    """The workbook for (serial, count) rows ordered by serial, as .xlsx bytes.

    Every sheet is the header row and one row per version (what readers of the report rely
    on); the window, when given, is in the chart's title, in the printed page's header and,
    on the sheet of a week without production, in its one line.
    """
    workbook = Workbook()
    workbook.remove(workbook.active)
    for model, rows in groupby(counts, key=lambda row: row[0].split("-", 1)[0]):
        sheet = _new_sheet(workbook, model, window)
        for serial, count in rows:
            _append_text_row(sheet, model, serial.split("-", 1)[1], count)
        _add_chart(sheet, model, window)
        _set_up_printing(sheet)
    if not counts:
        sheet = _new_sheet(workbook, "Нет производства", window)
        sheet.append(
            [f"{describe_window(window)}: роботы не производились." if window else NO_PRODUCTION]
        )
        _set_up_printing(sheet)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _new_sheet(workbook: Workbook, title: str, window: Window | None) -> Worksheet:
    sheet = workbook.create_sheet(title=title)
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = HEADER_FONT
    if window:
        sheet.oddHeader.center.text = describe_window(window)
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABC", COLUMN_WIDTHS, strict=True):
        sheet.column_dimensions[letter].width = width
    return sheet


def _append_text_row(sheet: Worksheet, model: str, version: str, count: int) -> None:
    sheet.append([model, version, count])
    # openpyxl takes any string that starts with "=" for a formula; a catalog name is text.
    for cell in sheet[sheet.max_row][:2]:
        cell.data_type = "s"


def _add_chart(sheet: Worksheet, model: str, window: Window | None) -> None:
    chart = BarChart()
    title = f"{model}: {HEADER[2].lower()}"
    chart.title = f"{title}\n{describe_window(window)}" if window else title
    chart.y_axis.title = "Роботов"
    chart.x_axis.title = HEADER[1]
    chart.legend = None
    # Bars start at zero, so that 36 next to 40 does not look like a fifth of it; the axes
    # are said to be shown, as Excel hides them when openpyxl leaves that unset.
    chart.y_axis.scaling.min = 0
    chart.y_axis.number_format = "0"
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    last = sheet.max_row
    chart.add_data(Reference(sheet, min_col=3, min_row=1, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=2, min_row=2, max_row=last))
    sheet.add_chart(chart, "E2")


def _set_up_printing(sheet: Worksheet) -> None:
    sheet.page_setup.orientation = sheet.ORIENTATION_LANDSCAPE
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 1
    first, last = PRINT_AREA_COLUMNS.split(":")
    sheet.print_area = f"{first}1:{last}{max(sheet.max_row, PRINT_AREA_MIN_ROWS)}"


def _write_atomically(folder, name: str, content: bytes) -> None:
    # A temporary file in the same folder, then a rename: two downloads at once never leave
    # or find a half-written report.
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:
        try:
            tmp.write(content)
            tmp.flush()
            os.chmod(tmp.name, 0o644)
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, os.path.join(folder, name))
