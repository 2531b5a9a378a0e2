"""The HTML report in a real browser: headless Chromium (Debian's package; `.ci/run` installs it when missing)
opens the report `eegbench leaderboard --out report.html` writes, and every image must load and the page
must log no error.

The check runs inside the page: a small script placed before the report's own markup records every
`error` event (a script error, or a resource such as an image that fails to load: those events are caught
on `window` in the capture phase) and every `console.error` call, and after `load` writes what it saw,
with each image's decoded size, into the DOM that `chromium --dump-dom` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from test_leaderboard import make_results

from eegbench.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (bash .ci/chromium.sh installs it)")

PROBE = """<script>
(function () {
  var seen = [];
  window.addEventListener("error", function (e) {
    var t = e.target || {};
    seen.push(t.tagName ? "resource " + t.tagName + " failed: " + String(t.src || t.href || "").slice(0, 80)
                        : "script error: " + e.message);
  }, true);
  var consoleError = console.error;
  console.error = function () {
    seen.push("console.error: " + Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.map.call(document.images, function (img) {
      return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
    });
    var out = document.createElement("pre");
    out.id = "eegbench-browser-check";
    out.textContent = JSON.stringify({errors: seen, images: images, title: document.title});
    document.body.appendChild(out);
  });
})();
</script>
"""


def open_in_chromium(html_path, tmp_path) -> dict:
    """What the probe saw when Chromium loaded ``html_path`` (a copy with the probe placed first)."""
    page = html_path.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    head = re.search(r"<head[^>]*>", page, flags=re.I)
    assert head, "the report has no <head>"
    probed.write_text(page[: head.end()] + PROBE + page[head.end() :], encoding="utf-8")
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="eegbench-browser-check">(.*?)</pre>', proc.stdout, flags=re.S)
    assert found, f"the probe never ran: {proc.stderr[-2000:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


def test_report_loads_every_image_without_errors_in_a_real_browser(tmp_path):
    results = tmp_path / "results"
    make_results(results)
    report = tmp_path / "report.html"
    assert main(["leaderboard", str(results), "--no-reported", "--out", str(report)]) == 0
    seen = open_in_chromium(report, tmp_path)
    assert seen["errors"] == []
    assert len(seen["images"]) >= 3  # the report's plots, inline
    broken = [img for img in seen["images"] if not (img["complete"] and img["width"] > 0 and img["height"] > 0)]
    assert broken == []


def test_the_probe_sees_a_broken_image(tmp_path):
    """The check can fail: a page with an image that does not decode is reported."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><head><title>t</title></head><body>"
        "<img alt='bad' src='data:image/png;base64,AAAA'></body></html>",
        encoding="utf-8",
    )
    seen = open_in_chromium(page, tmp_path)
    assert seen["errors"] and seen["images"][0]["width"] == 0
