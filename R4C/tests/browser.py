"""Debian's Chromium, driven through chromium-driver, for tests of the pages people use.

`make check` installs both (and LibreOffice) from Debian's packages; they are found on PATH.
Without them the tests that need them skip with a line that says how to install them, and
in CI (where `CI` is set) they fail instead.
"""

import base64
import os
import shutil
import tempfile
import unittest
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def need(*programs: str) -> None:
    """Skip the test (fail it in CI) unless each of `programs` is on PATH."""
    missing = [program for program in programs if shutil.which(program) is None]
    if not missing:
        return
    message = (
        f"{', '.join(missing)} not on PATH: `make tools` installs what make check needs from "
        "Debian's packages (the Makefile's CHECK_PACKAGES), as root or through sudo"
    )
    if os.environ.get("CI"):
        raise AssertionError(message)
    raise unittest.SkipTest(message)


AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"


def need_file(path: Path) -> None:
    """Skip the test (fail it in CI) unless `path`, which `make check` installs, is there."""
    if path.exists():
        return
    message = f"{path} is missing: `make check` installs it (npm ci)"
    if os.environ.get("CI"):
        raise AssertionError(message)
    raise unittest.SkipTest(message)


# Where the tests leave a screenshot of each page (CI keeps them as artifacts; docs/pages.md's
# pictures are copies of them).
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"


class Browser:
    """One headless Chromium with a profile and a download folder of its own."""

    def __init__(self, width: int = 1280, height: int = 900):
        self.profile = tempfile.TemporaryDirectory()
        self.downloads = Path(self.profile.name) / "downloads"
        self.downloads.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        # As root, with no GPU and a closed network: no sandbox, and no background calls
        # to Google's hosts that would only fail.
        for flag in [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={self.profile.name}/profile",
            f"--window-size={width},{height}",
            "--lang=ru",
        ]:
            options.add_argument(flag)
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(self.downloads),
                "download.prompt_for_download": False,
            },
        )
        self.driver = webdriver.Chrome(
            options=options, service=Service(shutil.which("chromedriver"))
        )
        self.driver.implicitly_wait(5)
        self.driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)}
        )

    def wait(self, condition, seconds: float = 10):
        return WebDriverWait(self.driver, seconds).until(lambda driver: condition())

    def screenshot(self, name: str) -> Path:
        """The whole page as a PNG in SCREENSHOTS, not just what the window shows."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def serious_barriers(self) -> list[str]:
        """What axe-core (node_modules, `make check` installs it) finds on the page that
        would stop or seriously hinder someone using assistive technology."""
        need_file(AXE)
        self.driver.execute_script(AXE.read_text())
        found = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then("
            "  r => done(r.violations.map(v => [v.impact, v.id, v.help,"
            "    v.nodes.map(n => n.target.join(' ')).join(', ')])));"
        )
        return [f"{i} {rule}: {text} ({where})" for i, rule, text, where in found
                if i in ("serious", "critical")]  # fmt: skip

    def close(self) -> None:
        self.driver.quit()
        self.profile.cleanup()


class BrowserTestCase(StaticLiveServerTestCase):
    """Tests against the live server, in one Browser of `window` size for the class."""

    window = (1280, 900)

    @classmethod
    def setUpClass(cls):
        need("chromium", "chromedriver")
        super().setUpClass()
        cls.browser = Browser(*cls.window)
        cls.driver = cls.browser.driver

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        super().tearDownClass()

    def look_at(self, name: str) -> None:
        """The page as people get it: no serious accessibility barrier (axe-core), and its
        screenshots at the window's width and at a phone's (390 px)."""
        self.assertEqual(self.browser.serious_barriers(), [])
        self.browser.screenshot(name)
        width, height = self.driver.get_window_size().values()
        self.driver.set_window_size(390, 844)
        try:
            self.browser.screenshot(f"{name}-390")
        finally:
            self.driver.set_window_size(width, height)
