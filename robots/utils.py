"""The director's weekly production report."""

import io
import logging
import os
import tempfile
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.drawing.spreadsheet_drawing import AnchorMarker, TwoCellAnchor
from openpyxl.styles import Border, Font, PatternFill, Side
from openpyxl.styles.fonts import DEFAULT_FONT
from openpyxl.utils import column_index_from_string
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.worksheet import Worksheet

from robots.models import SERIAL, Robot

log = logging.getLogger(__name__)

REPORT_NAME = "robots_list.xlsx"
HEADER = ("Модель", "Версия", "Количество за неделю")
NO_PRODUCTION = "За эту неделю роботы не производились."
SUMMARY = "Итого"
SUMMARY_HEADER = ("Робот", HEADER[2])
COLUMN_WIDTHS = (10, 10, 24)
# The data's own font, bold: a bold Font without a name renders in another typeface.
HEADER_FONT = Font(
    name=DEFAULT_FONT.name,
    sz=DEFAULT_FONT.sz,
    family=DEFAULT_FONT.family,
    scheme=DEFAULT_FONT.scheme,
    bold=True,
)
HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
BOX = Border(*(Side(style="thin", color="7A8699"),) * 4)
# Printed, a sheet is its table (A:C) and its chart (E2 to the print area's corner) on one
# landscape A4 page, which they fill: the print area is just what they cover, in about the
# page's proportions.
PRINT_AREA_COLUMNS = "A:L"
PRINT_AREA_ROWS = 40

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

    First "Итого": the week, one row per serial (or a line that says none was produced) and
    the total. Then a sheet per model: the header row, one row per version (what readers of
    the report rely on) and its total, with a chart. The week, when given, is on each printed
    page once, in one line: the first line of each sheet (on a model sheet, beside the
    table's header, so that its rows are still the table's).
    """
    workbook = Workbook()
    summary = workbook.active
    summary.title = SUMMARY
    # The week in its first line.
    summary.append([describe_window(window) if window else "Производство за неделю"])
    _start_table(summary, SUMMARY_HEADER)
    for serial, count in counts:
        _append_text_row(summary, serial, count)
    if counts:
        _add_chart(summary, SUMMARY, "Робот")
    else:
        summary.append([NO_PRODUCTION])
    _append_total(summary, counts, SUMMARY_HEADER)
    _set_up_printing(summary)
    for model, rows in groupby(counts, key=lambda row: row[0].split("-", 1)[0]):
        rows = list(rows)
        sheet = workbook.create_sheet(title=model)
        _start_table(sheet, HEADER)
        if window:  # beside the table's header, above the chart: its rows stay the table's
            sheet["E1"] = describe_window(window)
        for serial, count in rows:
            _append_text_row(sheet, model, serial.split("-", 1)[1], count)
        _add_chart(sheet, model, HEADER[1])
        _append_total(sheet, rows, HEADER)
        _set_up_printing(sheet)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def report_name(window: Window) -> str:
    """The downloaded file's name, by its week: robots_2026-11-20_2026-11-27.xlsx."""
    start, end = (timezone.localtime(moment).strftime("%Y-%m-%d") for moment in window)
    return f"robots_{start}_{end}.xlsx"


def _start_table(sheet: Worksheet, header: tuple[str, ...]) -> None:
    """The header row, filled and bordered, below what the sheet holds already."""
    sheet.append(header)
    for cell in sheet[sheet.max_row][: len(header)]:
        cell.font, cell.fill, cell.border = HEADER_FONT, HEADER_FILL, BOX
    sheet.freeze_panes = f"A{sheet.max_row + 1}"
    # The names' columns narrow, the count's wide enough for its header.
    for letter, width in zip("ABC", COLUMN_WIDTHS[-len(header) :], strict=False):
        sheet.column_dimensions[letter].width = width


def _append_text_row(sheet: Worksheet, *names_and_count) -> None:
    sheet.append(names_and_count)
    # openpyxl takes any string that starts with "=" for a formula; a catalog name is text.
    for cell in sheet[sheet.max_row][: len(names_and_count) - 1]:
        cell.data_type = "s"


def _append_total(sheet: Worksheet, rows: list[tuple[str, int]], header: tuple[str, ...]) -> None:
    """The total row under the table, its count in the count's column."""
    total = sum(count for _, count in rows)
    sheet.append([SUMMARY, *[None] * (len(header) - 2), total])
    for cell in sheet[sheet.max_row][: len(header)]:
        cell.font, cell.border = HEADER_FONT, BOX


def _add_chart(sheet: Worksheet, title: str, axis: str) -> None:
    """Of the table's rows, before its total: the last column's counts, by the column
    before it (the version; the serial on the summary)."""
    chart = BarChart()
    chart.title = f"{title}: {HEADER[2].lower()}"
    chart.y_axis.title = "Роботов"
    chart.x_axis.title = axis
    chart.legend = None
    # Bars start at zero, so that 36 next to 40 does not look like a fifth of it; the axes
    # are said to be shown, as Excel hides them when openpyxl leaves that unset.
    chart.y_axis.scaling.min = 0
    chart.y_axis.number_format = "0"
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    found = next(cell for row in sheet.iter_rows() for cell in row if cell.value == HEADER[2])
    header, counts, last = found.row, found.column, sheet.max_row
    chart.add_data(
        Reference(sheet, min_col=counts, min_row=header, max_row=last), titles_from_data=True
    )
    chart.set_categories(Reference(sheet, min_col=counts - 1, min_row=header + 1, max_row=last))
    # Spread over cells, not sized in cm: the print area is then exactly the table and the
    # chart, which fit-to-page scales to fill the page.
    last = PRINT_AREA_COLUMNS.split(":")[1]
    chart.anchor = TwoCellAnchor(
        _from=AnchorMarker(col=column_index_from_string("E") - 1, row=1),
        to=AnchorMarker(col=column_index_from_string(last) - 1, row=PRINT_AREA_ROWS - 1),
    )
    sheet.add_chart(chart)


def _set_up_printing(sheet: Worksheet) -> None:
    sheet.page_setup.orientation = sheet.ORIENTATION_LANDSCAPE
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 1
    # Half-inch margins, no header or footer: the week is on the sheet's first line.
    sheet.page_margins = PageMargins(left=0.5, right=0.5, top=0.5, bottom=0.5, header=0, footer=0)
    first, last = PRINT_AREA_COLUMNS.split(":")
    sheet.print_area = f"{first}1:{last}{max(sheet.max_row, PRINT_AREA_ROWS)}"


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
