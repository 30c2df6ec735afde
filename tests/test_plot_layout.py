"""Plot texts a reader can use (issue 22): names cut where configurations agree, not where they
differ (the quickstart's scatter plots said "input_mask / beam[num_beam…" for two configurations);
the learning-curve legend names "dev loss" only where one is drawn; a plot of several panels is one
SVG per panel, which the page wraps one per row on a 390 px phone (tests/test_browser.py looks)."""
from __future__ import annotations

import re

from harness.results import load_run
from harness_plugins.reporters._plots import beam_plot, shorten, training_plot
from report_helpers import translation_benchmark, write_run


def texts(svg: str) -> list[str]:
    """The texts of an SVG: glyphs are paths, matplotlib keeps each text in a comment."""
    return re.findall(r"<!-- (.*?) -->", svg)


def test_names_differing_only_at_the_end_stay_distinct():
    names = ["numbers-marian / input_mask / beam[num_beams=2, length_penalty=1.0]",
             "numbers-marian / input_mask / beam[num_beams=4, length_penalty=1.0]"]
    assert shorten(names) == ["…beam[num_beams=2, length_penalty=1.0]", "…beam[num_beams=4, length_penalty=1.0]"]
    assert shorten(["input_mask / beam[num_beams=2]", "input_mask / beam[num_beams=4]", "unmasked / greedy"], 20) == \
        ["…beam[num_beams=2]", "…beam[num_beams=4]", "unmasked / greedy"]
    # differing in the middle: the shared end goes too
    assert shorten(["beam[num_beams=2,max_new_tokens=24,num_return_sequences=2]",
                    "beam[num_beams=4,max_new_tokens=24,num_return_sequences=2]"], 24) == \
        ["beam[num_beams=2…", "beam[num_beams=4…"]
    assert shorten(["short", "also short"]) == ["short", "also short"]
    for n in (8, 12, 20, 30):
        cut = shorten(names, n)
        assert len(set(cut)) == 2 and all(len(c) <= n for c in cut) or cut == names


def test_scatter_labels_of_the_quickstarts_configurations_are_distinct(tmp_path):
    """unmasked and input_mask, each with beam 2 and beam 4: four points, four distinct names
    (28 characters: "input_mask / beam[num_beams=2]" is 30)."""
    from harness_plugins.reporters.html import HtmlReport

    tb = translation_benchmark(16)
    cells = []
    for k, strategy in enumerate(("unmasked", "input_mask")):
        for j, decoder in enumerate(("greedy", "beam[num_beams=2]", "beam[num_beams=4]")):
            outputs = [r if i != 3 * k + j else r + " extra" for i, r in enumerate(tb["references"])]
            cells.append(dict(benchmark="numbers-de-en", strategy=strategy, decoder=decoder, outputs=outputs,
                              predict_seconds=1.0 + k + j, extra={"distinct_2": 40.0 + 3 * k + j}))
    out = write_run(tmp_path / "run", benchmarks={"numbers-de-en": tb}, cells=cells,
                    extra_metric_plugins={"distinct_2": "distinct_2"})
    page = HtmlReport().write(load_run(out), out)[0].read_text()
    figure = re.search(r'<figure class="plot" data-plot="diversity">(.*?)</figure>', page, re.S).group(1)
    named = [t for t in texts(figure) if "beam" in t]
    assert len(named) == 4 and len(set(named)) == 4, named  # was "input_mask / beam[num_beam…" twice
    assert sorted(t[-2] for t in named) == ["2", "2", "4", "4"], named  # each keeps its num_beams


def curves(with_dev: bool) -> dict:
    line = {"name": "numbers-marian / input_mask", "index": 0, "train": {"x": [10, 20], "y": [2.0, 1.5]},
            "dev": {"x": [20], "y": [1.7]} if with_dev else {"x": [], "y": []}}
    return {"panels": [{"task": "translation", "y_label": "loss", "lines": [line]}]}


def test_the_learning_curve_legend_names_dev_loss_only_when_one_is_drawn():
    assert "dev loss" not in texts(training_plot(curves(False)))
    assert "training loss (windowed mean)" in texts(training_plot(curves(False)))
    assert "dev loss" in texts(training_plot(curves(True)))


def test_a_plot_of_several_panels_is_one_svg_per_panel_that_the_page_wraps():
    from harness.report.page import asset

    data = {"metrics": [("bleu", "BLEU", True), ("chrf", "chrF", True), ("ter", "TER", False)],
            "lines": [{"name": "beam", "x": [2, 4], "y": {"bleu": [30.0, 31.0], "chrf": [50.0, 51.0],
                                                           "ter": [60.0, 59.0]}}],
            "greedy": [{"name": "greedy", "y": {"bleu": 29.0, "chrf": 49.0, "ter": 61.0}}]}
    html = beam_plot(data)
    assert html.startswith('<div class="panels"><svg') and html.endswith("</svg>\n</div>")
    svgs = re.findall(r"<svg[^>]*>", html)
    assert len(svgs) == 3 and all('style="max-width:100%;height:auto"' in s for s in svgs)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "ids unique across the panels"
    # one panel: one SVG, no wrapper
    single = beam_plot({**data, "metrics": data["metrics"][:1]})
    assert single.startswith("<svg") and "panels" not in single
    css = asset("report.css")
    assert re.search(r"\.panels \{[^}]*display: flex;[^}]*flex-wrap: wrap;", css)
