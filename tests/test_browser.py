"""report.html in a real headless Chromium: no console errors, no network, sortable tables,
injected scripts inert, and a screenshot to look at.

Needs Debian's chromium (``apt-get install -y chromium chromium-driver``) and Playwright for
Python (``pip install playwright``; its own browser download is not used). Skips with the reason
when either is missing. The screenshot goes to ``$HARNESS_SCREENSHOT_DIR`` (default: the test's
tmp directory).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.results import load_run
from report_helpers import XSS_OUT, build_demo_run

CHROMIUM = os.environ.get("HARNESS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                                 "(pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
                                                   args=ARGS, viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            log = {"errors": [], "requests": []}
            page.on("console", lambda m: log["errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: log["errors"].append(str(e)))

            def route(r):  # the report must not fetch anything: record and refuse every non-file request
                if not r.request.url.startswith(("file:", "data:")):
                    log["requests"].append(r.request.url)
                    return r.abort()
                return r.continue_()

            page.route("**/*", route)
            yield page, log
        finally:
            ctx.close()


def column(page, table_id: str, index: int) -> list[str]:
    return page.eval_on_selector_all(f"#{table_id} tbody tr", f"rows => rows.map(r => r.cells[{index}].innerText.trim())")


def test_report_in_headless_chromium(browser_page, tmp_path):
    from harness_plugins.reporters.html import HtmlReport

    page, log = browser_page
    out = build_demo_run(tmp_path / "run")
    html_path = HtmlReport().write(load_run(out), out)[0]
    page.goto(html_path.resolve().as_uri())
    page.wait_for_load_state("load")

    # injected markup is shown as text and never runs
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert XSS_OUT in page.inner_text("#drill-1")
    assert page.eval_on_selector_all("img", "els => els.length") == 0
    assert page.title().startswith("demo</script><script>window.__pwned=4</script>")

    # the first click on the BLEU header sorts best first (higher is better: descending, missing last),
    # the second click reverses it
    table = page.locator("table[data-metric=bleu]")
    tid = table.get_attribute("id")
    assert column(page, tid, 0) == ["1", "2", "3", "4", "–"]  # the page opens best first
    table.locator("th", has_text="Configuration").first.click()
    before = column(page, tid, 1)
    table.locator("th", has_text="BLEU").first.click()
    desc_vals = column(page, tid, 2)
    assert column(page, tid, 1) != before and column(page, tid, 1)[0] == "beam[num_beams=4]"
    nums = [float(v) for v in desc_vals if v != "–"]
    assert nums == sorted(nums, reverse=True) and desc_vals[-1] == "–"  # the failed configuration sorts last
    assert table.locator("th", has_text="BLEU").first.get_attribute("aria-sort") == "descending"
    table.locator("th", has_text="BLEU").first.click()
    asc = [float(v) for v in column(page, tid, 2) if v != "–"]
    assert asc == sorted(asc)
    # TER is lower-is-better: its first click puts the lowest TER first; Rank sorts 1 first
    ter = page.locator("table[data-metric=ter]")
    tter = ter.get_attribute("id")
    ter.locator("th", has_text="TER").first.click()
    ter_vals = [float(v) for v in column(page, tter, 2) if v != "–"]
    assert ter_vals == sorted(ter_vals) and ter.locator("th", has_text="TER").first.get_attribute("aria-sort") == "ascending"
    table.locator("th", has_text="Rank").first.click()
    ranks = [int(v) for v in column(page, tid, 0) if v != "–"]
    assert ranks == sorted(ranks) and ranks[0] == 1
    # text columns sort too
    table.locator("th", has_text="Configuration").first.click()
    labels = [v.replace(" 1 failed", "").replace(" baseline", "") for v in column(page, tid, 1)]
    assert labels == sorted(labels, key=str.lower)

    # the plots are inline SVG and rendered with a size
    sizes = page.eval_on_selector_all("figure.plot svg", "els => els.map(e => e.getBoundingClientRect().width)")
    assert len(sizes) == 4 and min(sizes) > 200

    shots = Path(os.environ.get("HARNESS_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    assert (shots / "report.png").stat().st_size > 50_000

    assert log["errors"] == [] and log["requests"] == []


def test_leaderboard_page_in_headless_chromium(browser_page, tmp_path):
    import harness
    from harness.leaderboards import export

    page, log = browser_page
    out = build_demo_run(tmp_path / "run")
    path = export(harness.leaderboard([out]), tmp_path / "leaderboard.html")
    page.goto(path.resolve().as_uri())
    first = page.locator("table.leaderboard").first
    before = column(page, "lb-1 table", 0)
    first.locator("th", has_text="Rank").click()
    first.locator("th", has_text="Rank").click()
    assert column(page, "lb-1 table", 0) == sorted(before, key=int, reverse=True) != before
    # the first click on Score sorts best first there too (BLEU: highest first)
    head = [h.strip() for h in page.eval_on_selector_all("#lb-1 table th", "els => els.map(e => e.innerText)")]
    score_col = head.index("Score")
    first.locator("th", has_text="Score").click()
    scores = [float(v) for v in column(page, "lb-1 table", score_col) if v != "–"]
    assert scores == sorted(scores, reverse=True)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert log["errors"] == [] and log["requests"] == []
