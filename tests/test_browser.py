"""report.html in a real headless Chromium: no console errors, no network, sortable tables,
injected scripts inert, and a screenshot to look at.

Needs Debian's chromium (``apt-get install -y chromium chromium-driver``) and Playwright for
Python (``pip install playwright``; its own browser download is not used). Skips with the reason
when either is missing. The screenshot goes to ``$HARNESS_SCREENSHOT_DIR`` (default: the test's
tmp directory).
"""
from __future__ import annotations

import os
import random
import re
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

    # the plots are inline SVG and rendered with a size (a plot of several panels: one SVG each)
    assert page.eval_on_selector_all("figure.plot", "els => els.length") == 4
    sizes = page.eval_on_selector_all("figure.plot svg", "els => els.map(e => e.getBoundingClientRect().width)")
    assert len(sizes) >= 4 and min(sizes) > 200
    for p in page.eval_on_selector_all("figure.plot", TEXT_BOXES):  # no two texts of a plot overlap
        assert len(p["boxes"]) > 5 and overlapping(p["boxes"]) == [], p["plot"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    shots = Path(os.environ.get("HARNESS_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    assert (shots / "report.png").stat().st_size > 50_000

    assert log["errors"] == [] and log["requests"] == []


def test_leaderboard_page_in_headless_chromium(browser_page, tmp_path):
    import harness
    from harness.report.leaderboards import export

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


def crowded_run(out: Path) -> Path:
    """Ten beam configurations whose scores, diversity and speeds nearly coincide (every label of
    the scatter plots wants the same spot), decoder parameters of which only num_beams differs,
    one empty output, and long configuration labels that make the tables wide."""
    from report_helpers import degrade, translation_benchmark, write_run

    tb = translation_benchmark(32)
    refs = tb["references"]
    cells = []
    for i in range(10):
        # nine configurations a sentence apart cluster in one corner; the tenth is far away
        outputs = [r if j != i else " ".join(r.split()[:-1]) for j, r in enumerate(refs)] if i < 9 else \
            degrade(refs, 2)
        if i == 3:
            outputs[0] = ""
        params = {"num_beams": i + 1, "length_penalty": 1.0, "early_stopping": True, "no_repeat_ngram_size": 3}
        label = "beam[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"
        cells.append(dict(benchmark="multi30k", decoder=label, decoder_params=params, outputs=outputs,
                          predict_seconds=(4.0 + 0.002 * i) if i < 9 else 1.0,
                          extra={"distinct_2": (0.40 + 0.0003 * i) if i < 9 else 0.6}))
    return write_run(out, experiment="crowded", benchmarks={"multi30k": tb}, cells=cells,
                     extra_metric_plugins={"distinct_2": "distinct_2"})


TEXT_BOXES = """figs => figs.map(f => ({plot: f.dataset.plot, boxes: Array.from(
    f.querySelectorAll('svg g[id*="text_"], svg g[id*="label-"], svg g[id*="legend_"] g[id*="text_"]'))
    .filter(g => !g.parentElement.closest('g[id*="text_"], g[id*="label-"]'))
    .map(g => { const r = g.getBoundingClientRect();
                return {id: g.id, x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; })
    .filter(b => b.x1 > b.x0 && b.y1 > b.y0)}))"""


def overlapping(boxes: list[dict], tol: float = 0.5) -> list[tuple[str, str]]:
    return [(a["id"], b["id"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a["x0"] + tol < b["x1"] and b["x0"] + tol < a["x1"] and a["y0"] + tol < b["y1"] and b["y0"] + tol < a["y1"]]


@pytest.mark.parametrize("width", [1280, 390])
def test_crowded_report_labels_never_overlap_and_the_page_fits_the_screen(browser_page, tmp_path, width):
    from harness_plugins.reporters.html import HtmlReport

    page, log = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    out = crowded_run(tmp_path / "run")
    html_path = HtmlReport().write(load_run(out), out)[0]
    page.goto(html_path.resolve().as_uri())
    page.wait_for_load_state("load")

    # no two text boxes of a plot intersect: point labels, tick labels, axis titles, legend entries
    plots = page.eval_on_selector_all("figure.plot", TEXT_BOXES)
    assert {p["plot"] for p in plots} >= {"diversity", "speed", "beam"}
    for p in plots:
        labels = [b for b in p["boxes"] if "label-" in b["id"]]
        assert len(p["boxes"]) > 10 and (p["plot"] not in ("diversity", "speed") or labels), p["plot"]
        assert overlapping(p["boxes"]) == [], p["plot"]
    # every configuration is named once, in place or in the legend beside the plot, by what differs
    # (num_beams; not the parameters all ten share): glyphs are paths, matplotlib keeps the text in comments
    for name in ("diversity", "speed"):
        svg = page.inner_html(f"figure.plot[data-plot={name}]")
        named = sorted(re.findall(r"<!-- (num_beams=\d+) -->", svg), key=lambda t: int(t.split("=")[1]))
        assert named == [f"num_beams={i}" for i in range(1, 11)], name
        assert "length_penalty" not in svg and "early_stopping" not in svg

    # the page is never wider than the screen: wide tables scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    widest = page.eval_on_selector_all("table", "ts => Math.max(...ts.map(t => t.getBoundingClientRect().width))")
    if width == 390:
        assert widest > 390  # the test means something: some table is wider than the phone...
        scrollers = page.eval_on_selector_all(
            "table", "ts => ts.filter(t => t.getBoundingClientRect().width > 390)"
                     ".map(t => getComputedStyle(t.parentElement).overflowX)")
        assert set(scrollers) == {"auto"}  # ...and scrolls inside its box

    # an empty output is shown as "(empty)", not as a blank cell
    empty = page.eval_on_selector_all("table.drill em.empty", "els => els.map(e => e.innerText)")
    assert empty == ["(empty)"]

    shots = Path(os.environ.get("HARNESS_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"crowded-{width}.png"), full_page=True)
    assert log["errors"] == [] and log["requests"] == []


def test_seeds_plot_names_many_strategies_without_overlap(browser_page, tmp_path):
    """Eight strategies whose labels share everything but mask_prob: the tick labels name only
    mask_prob and stand vertical when side by side they would touch."""
    from harness_plugins.reporters.html import HtmlReport
    from report_helpers import flip, write_run

    page, log = browser_page
    rnd = random.Random(0)
    gold = [rnd.choice(["neg", "pos"]) for _ in range(100)]
    bench = {"task": "classification", "sources": [f"review {i}" for i in range(100)], "references": gold}
    cells = [dict(benchmark="sst2", strategy=f"input_mask[mask_prob=0.{k + 1},schedule=linear]", seed=s,
                  outputs=flip(gold, 0.1 + 0.02 * k, 10 * k + s)) for k in range(8) for s in range(3)]
    out = write_run(tmp_path / "run", benchmarks={"sst2": bench}, cells=cells, scale=100.0)
    page.goto(HtmlReport().write(load_run(out), out)[0].resolve().as_uri())
    (fig,) = page.eval_on_selector_all("figure.plot[data-plot=seeds]", TEXT_BOXES)
    assert len(fig["boxes"]) >= 8 + 3 and overlapping(fig["boxes"]) == []
    svg = page.inner_html("figure.plot[data-plot=seeds]")
    ticks = re.findall(r"<!-- (mask_prob=0\.\d) -->", svg)
    assert ticks == [f"mask_prob=0.{k + 1}" for k in range(8)] and "schedule" not in svg
    assert log["errors"] == [] and log["requests"] == []


@pytest.mark.parametrize("width", [1280, 390])
def test_study_report_fits_the_screen_and_its_plot_texts_do_not_overlap(browser_page, tmp_path, width):
    from harness_plugins.reporters.html import HtmlReport
    from test_report_study import build_study_run

    page, log = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    out = build_study_run(tmp_path / "run")
    page.goto(HtmlReport().write(load_run(out), out)[0].resolve().as_uri())
    figs = page.eval_on_selector_all("figure.plot", TEXT_BOXES)
    assert {"study-budget", "study-rate", "seeds"} <= {f["plot"] for f in figs}
    for f in figs:
        assert len(f["boxes"]) > 8 and overlapping(f["boxes"]) == [], f["plot"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert log["errors"] == [] and log["requests"] == []


@pytest.mark.parametrize("width", [1280, 390])
def test_a_plot_of_several_panels_is_one_panel_per_row_on_a_phone(browser_page, tmp_path, width):
    """The beam plot draws one panel per metric; squeezed into one picture at 390 px each panel was
    a third of the screen wide. Each panel is its own SVG now: side by side on a wide screen, one
    per row on a phone, each nearly the screen's width."""
    from harness_plugins.reporters.html import HtmlReport

    page, log = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    out = crowded_run(tmp_path / "run")
    page.goto(HtmlReport().write(load_run(out), out)[0].resolve().as_uri())
    boxes = page.eval_on_selector_all("figure.plot[data-plot=beam] .panels > svg", """svgs => svgs.map(s => {
        const r = s.getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width}; })""")
    assert len(boxes) >= 2
    if width == 390:
        assert all(b["w"] >= 300 for b in boxes), boxes
        assert len({round(b["y"]) for b in boxes}) == len(boxes), "one per row"
    else:
        assert len({round(b["y"]) for b in boxes}) == 1, "side by side"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert log["errors"] == [] and log["requests"] == []
