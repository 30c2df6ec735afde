"""Inline SVG plots for the HTML report, drawn with matplotlib's Agg/SVG backend.

Each function takes the data :func:`harness.report.analysis.plots.plot_data` prepared and returns an
``<svg>`` string (no XML prolog, no external references, glyphs drawn as paths so the page
looks the same without fonts and no text from the data becomes markup). A plot whose data is
absent is never called. The study section's two plots (Δ vs training budget, Δ vs masking rate)
take :func:`harness.report.analysis.study.study_plot_data`'s numbers and name their intervals in the
figure; the Training section's learning curves take
:func:`harness.report.analysis.training.training_plot_data`'s.

Texts never overlap: scatter points are labelled by :func:`place_labels` (greedy, nearest free
spot, a leader line when moved away, a legend beside the plot for points that find none), and
the seeds plot stands its tick labels vertical when side by side they would touch. The names
come from :func:`harness.report.analysis.plots.legend_names` (only what differs between the plotted
configurations), and a name too long for its place is cut where the names agree (:func:`shorten`),
never where they differ. A plot of several panels is one SVG per panel (:func:`_panels`), which the
page lays out side by side or one per row on a narrow screen. Non-goals: interactivity, styling
beyond a readable default.
"""
from __future__ import annotations

import io
import math
import os
import re
from typing import Any

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless; never opens a window
    import matplotlib.pyplot as plt

    return plt


def _svg(fig) -> str:
    plt = _pyplot()
    buf = io.StringIO()
    # metadata Date=None keeps the file reproducible; fonttype 'path' turns text into shapes
    with plt.rc_context({"svg.fonttype": "path", "svg.hashsalt": "harness"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # matplotlib gives fixed pt sizes; let the page scale the figure down on narrow screens
    text = re.sub(r'<svg([^>]*?) width="([\d.]+)pt" height="([\d.]+)pt"',
                  lambda m: f'<svg{m.group(1)} width="{m.group(2)}pt" height="{m.group(3)}pt" '
                            f'style="max-width:100%;height:auto" role="img"', text, count=1)
    return text


# where a shared start may be cut, widest parts first: whole " / " parts, then inside brackets
_BOUNDARIES = (re.compile(r" / "), re.compile(r"\[|, ?"), re.compile(r"=| "))


def shorten(names: list[str], n: int = 38) -> list[str]:
    """The names cut to ``n`` characters so that distinct names stay distinct. Configurations of
    one plot share their start (``input_mask / beam[num_beams=``) and differ at the end, so the
    part they share goes first: the common prefix becomes "…", cut at a " / " if that is enough,
    else inside the brackets; then only the end is kept; then the start and the end around "…".
    Names that cannot be cut without two becoming equal are kept whole."""
    distinct = list(dict.fromkeys(names))
    if all(len(x) <= n for x in distinct):
        return list(names)
    long = [x for x in distinct if len(x) > n]  # only these are cut: what they share may go
    prefix = os.path.commonprefix(long) if len(long) > 1 else ""
    cuts = [max((m.end() for m in b.finditer(prefix)), default=0) for b in _BOUNDARIES]
    suffix = os.path.commonprefix([x[::-1] for x in long])[::-1] if len(long) > 1 else ""
    # a shared end goes too when the names differ in the middle: from its first separator on
    tail = next((len(suffix) - m.start() for m in re.finditer(r"[,\]]| / ", suffix)), 0)
    keep = max(1, n // 3)
    ways = [lambda x, c=c: "…" + x[c:] for c in dict.fromkeys(cuts) if c] + \
           [lambda x, c=c: ("…" if c else "") + x[c:len(x) - tail] + "…" for c in dict.fromkeys(cuts) if tail] + \
           [lambda x: "…" + x[-(n - 1):], lambda x: x[:keep] + "…" + x[-(n - keep - 1):]]
    for way in ways:
        short = {x: (x if len(x) <= n else way(x)) for x in distinct}
        if all(len(v) <= n for v in short.values()) and len(set(short.values())) == len(distinct):
            return [short[x] for x in names]
    return list(names)


def _panels(figs: list) -> str:
    """A plot of several panels as one SVG per panel, in a ``div.panels`` that report.css lays out
    side by side where they fit and one per row where they do not: on a 390 px phone each panel is
    drawn nearly at its own width, not three panels squeezed into one picture. (Each panel's ids get
    their own prefix: the page holds them all.)"""
    if len(figs) == 1:
        return _svg(figs[0])
    return '<div class="panels">' + "".join(_prefixed(_svg(f), f"k{i}") for i, f in enumerate(figs)) + "</div>"


def _figures(n: int, size: tuple[float, float]) -> list:
    plt = _pyplot()
    return [plt.subplots(figsize=size) for _ in range(n)]


def beam_plot(data: dict[str, Any]) -> str:
    """Quality against beam size, one panel per metric, one line per decoder family."""
    metrics = data["metrics"]
    names = shorten([line["name"] for line in data["lines"]] + [g["name"] for g in data.get("greedy", [])])
    line_names, greedy_names = names[:len(data["lines"])], names[len(data["lines"]):]
    figs = _figures(len(metrics), (4.2, 3.2))
    for k, ((fig, ax), (label, title, hib)) in enumerate(zip(figs, metrics)):
        for i, line in enumerate(data["lines"]):
            pts = [(x, y) for x, y in zip(line["x"], line["y"][label]) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=_PALETTE[i % 10],
                        label=line_names[i])
        for j, g in enumerate(data.get("greedy", [])):
            y = g["y"].get(label)
            if y is not None:
                ax.axhline(y, linestyle="--", color="#555555", linewidth=1,
                           label=greedy_names[j] if j == 0 or len(data["greedy"]) > 1 else None)
        ax.set_xlabel("beam size (num_beams)")
        ax.set_ylabel(f"{title} ({'higher' if hib else 'lower'} is better)")
        xs = sorted({x for line in data["lines"] for x in line["x"]})
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7, loc="best")
        fig.suptitle("Quality vs beam size" + (f": {title}" if len(metrics) > 1 else ""), fontsize=10)
    return _panels([fig for fig, _ in figs])


# candidate label positions around a point, nearest first: offsets (points) in eight directions
# at growing distances; beyond the first ring a thin leader line joins label and point
_RINGS = (5.0, 12.0, 20.0, 30.0, 42.0, 56.0)
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(ax, points: list[tuple[float, float]], texts: list[str], *, fontsize: float = 7,
                 obstacles: list[tuple[float, float]] = ()) -> list[int]:
    """Label each point without any two labels overlapping each other, a marker or the axes'
    edge (so no tick label either): greedy, points in order, each label at the nearest free
    candidate position (:data:`_RINGS` x :data:`_DIRECTIONS`; a leader line past the first ring).
    Returns the indices of the points that found no free place: the caller names them in a
    legend instead. The layout is the one matplotlib draws, measured in display units after
    the axes' limits are final (the same greedy idea as most label placers, e.g. Imhof 1975)."""
    fig = ax.figure
    fig.canvas.draw()  # final limits and a renderer to measure text
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    marker = 4.5 * px  # half a default marker (6 pt) plus a margin
    taken = [(x - marker, y - marker, x + marker, y + marker)
             for x, y in [ax.transData.transform(p) for p in list(points) + list(obstacles)]]
    pad = 1.5 * px
    unplaced = []
    for i, ((x, y), text) in enumerate(zip([ax.transData.transform(p) for p in points], texts)):
        probe = ax.text(0, 0, text, fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        for r in _RINGS:
            found = None
            for dx, dy in _DIRECTIONS:
                ox, oy = dx * r * px, dy * r * px
                # the label's corner (or edge midpoint) nearest the point sits at the offset
                left = x + ox if dx > 0 else (x + ox - w if dx < 0 else x - w / 2)
                bottom = y + oy if dy > 0 else (y + oy - h if dy < 0 else y - h / 2)
                box = (left - pad, bottom - pad, left + w + pad, bottom + h + pad)
                inside = box[0] >= frame.x0 and box[2] <= frame.x1 and box[1] >= frame.y0 and box[3] <= frame.y1
                if inside and not any(_overlaps(box, t) for t in taken):
                    found = (dx, dy, r, box)
                    break
            if found:
                break
        if not found:
            unplaced.append(i)
            continue
        dx, dy, r, box = found
        taken.append(box)
        ha = "left" if dx > 0 else ("right" if dx < 0 else "center")
        va = "bottom" if dy > 0 else ("top" if dy < 0 else "center")
        kw = dict(arrowprops=dict(arrowstyle="-", color="#888888", linewidth=0.6, shrinkA=0, shrinkB=3)) \
            if r > _RINGS[0] else {}
        ann = ax.annotate(text, ax.transData.inverted().transform((x, y)), xytext=(dx * r, dy * r),
                          textcoords="offset points", fontsize=fontsize, ha=ha, va=va, **kw)
        ann.set_gid(f"label-{i}")
    return unplaced


def _scatter(points: list[dict[str, Any]], x_label: str, y_label: str, title: str, *, logx: bool = False,
             oracle: bool = False) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    handles = []
    obstacles = []
    for i, p in enumerate(points):
        handles.append(ax.scatter([p["x"]], [p["y"]], color=_PALETTE[i % 10], zorder=3))
        if oracle and p.get("oracle") is not None:
            ax.scatter([p["x"]], [p["oracle"]], color=_PALETTE[i % 10], marker="^", alpha=0.5, zorder=2)
            ax.plot([p["x"], p["x"]], [p["y"], p["oracle"]], color=_PALETTE[i % 10], alpha=0.3, linewidth=1)
            obstacles.append((p["x"], p["oracle"]))
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    # room inside the frame for labels of points at its edge
    ax.margins(x=0.12, y=0.15)
    texts = [name + p.get("suffix", "") for name, p in zip(shorten([p["name"] for p in points], 28), points)]
    unplaced = place_labels(ax, [(p["x"], p["y"]) for p in points], texts, obstacles=obstacles)
    if unplaced:
        # too crowded to label in place: those points are named in a legend beside the plot
        ax.legend([handles[i] for i in unplaced], [texts[i] for i in unplaced], fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="too close to label", title_fontsize=7)
    return _svg(fig)


def diversity_plot(data: dict[str, Any]) -> str:
    has_oracle = any(p.get("oracle") is not None for p in data["points"])
    xl = data["x_label"] + (" (lower = more diverse)" if data.get("x_lower_is_more_diverse") else " (higher = more diverse)")
    title = "Quality vs diversity" + (" (▲ = oracle BLEU of the n-best)" if has_oracle else "")
    # MBR points carry the expected utility they maximised: named beside the point (its scale is
    # the utility's, not the y axis')
    points = [{**p, "suffix": f" (E[{p.get('utility', 'utility')}] {p['expected_utility']:.1f})"}
              if p.get("expected_utility") is not None else p for p in data["points"]]
    return _scatter(points, xl, data["y_label"], title, oracle=has_oracle)


def speed_plot(data: dict[str, Any]) -> str:
    xs = [p["x"] for p in data["points"]]
    logx = min(xs) > 0 and max(xs) / min(xs) > 20
    return _scatter(data["points"], "decoding speed (examples per second, from cell timings)", data["y_label"],
                    "Decoding speed vs quality", logx=logx)


def seeds_plot(data: dict[str, Any]) -> str:
    """Mean ± standard deviation over seeds per configuration, with each seed as a dot."""
    import numpy as np

    plt = _pyplot()
    configs = [c for c in data["configs"] if c["values"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(configs) + 1.5), 3.4))
    for i, c in enumerate(configs):
        v = np.asarray(c["values"], dtype=float)
        sd = v.std(ddof=1) if len(v) > 1 else 0.0
        ax.errorbar([i], [v.mean()], yerr=[sd], fmt="o", color=_PALETTE[i % 10], capsize=5, markersize=7, zorder=3)
        jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
        ax.scatter(i + jitter, v, color=_PALETTE[i % 10], alpha=0.45, s=14, zorder=2)
    ax.set_xticks(range(len(configs)))
    # names side by side when they fit their slots; a name wider than its slot would run into its
    # neighbour's (slanted ones too), so then they all stand vertical, each in its own column
    ticks = ax.set_xticklabels(shorten([c["name"] for c in configs], 40), rotation=0, ha="center", fontsize=8)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ticks]
    if any(a.x1 + 2 > b.x0 for a, b in zip(boxes, boxes[1:])):
        for t in ticks:
            t.set_rotation(90)
    ax.set_ylabel(data["metric"])
    ax.set_title(f"{data['metric']} across seeds (mean ± sd; dots = seeds)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _svg(fig)


STUDY_BARS = "error bars: 95% CI, seeds × examples; pooled: t over datasets, 95% CI"


def _study_plot(data: dict[str, Any], *, logx: bool, title: str) -> str:
    """Δ against the baseline (y) along one study factor (x), one panel per value of the other:
    a line per dataset with its seeds × examples interval, the pooled effect in black with its t interval.
    The panels share one y range, as the panels of one figure would."""
    panels = data["panels"]
    figs = _figures(len(panels), (4.4, 3.4))
    names = list(dict.fromkeys(line["name"] for p in panels for line in p["lines"] if not line["pooled"]))
    every = list(dict.fromkeys(line["name"] for p in panels for line in p["lines"]))
    shown = dict(zip(every, shorten(every)))
    xs_all = sorted({pt["x"] for p in panels for line in p["lines"] for pt in line["points"]})
    # datasets side by side around each x, so their intervals do not hide each other
    span = (math.log(xs_all[-1] / xs_all[0]) if logx and xs_all[0] > 0 else (xs_all[-1] - xs_all[0])) or 1.0
    step = 0.025 * span
    for k, ((fig, ax), panel) in enumerate(zip(figs, panels)):
        ax.axhline(0.0, color="#555555", linewidth=1, linestyle="--", label=f"no difference ({data['baseline']})")
        for line in panel["lines"]:
            i = len(names) if line["pooled"] else names.index(line["name"])
            offset = (i - len(names) / 2) * step
            pts = [p for p in line["points"] if p["y"] is not None]
            if not pts:
                continue
            x = [(p["x"] * math.exp(offset)) if logx else p["x"] + offset for p in pts]
            y = [p["y"] for p in pts]
            lo = [p["y"] - p["low"] if p["low"] is not None else 0.0 for p in pts]
            hi = [p["high"] - p["y"] if p["high"] is not None else 0.0 for p in pts]
            color = "#000000" if line["pooled"] else _PALETTE[i % 10]
            ax.errorbar(x, y, yerr=[lo, hi], marker="D" if line["pooled"] else "o", color=color, capsize=4,
                        linewidth=2 if line["pooled"] else 1.2, markersize=6 if line["pooled"] else 5,
                        label=shown[line["name"]], zorder=4 if line["pooled"] else 3)
        if logx:
            ax.set_xscale("log")
        ax.set_xticks(xs_all)
        ax.set_xticklabels([f"{x:g}" for x in xs_all])
        ax.minorticks_off()
        ax.set_xlabel(data["x_label"])
        ax.set_ylabel(f"Δ {data['metric']} vs {data['baseline']}")
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(alpha=0.3)
        if k == len(figs) - 1:
            ax.legend(fontsize=7, loc="best")
        fig.suptitle(title, fontsize=10, y=1.02)
        # the intervals are named in the figure itself, so a copied plot still says what its bars are
        fig.text(0.5, -0.04, STUDY_BARS, ha="center", va="top", fontsize=8)
    lows, highs = zip(*(ax.get_ylim() for _, ax in figs))
    for _, ax in figs:
        ax.set_ylim(min(lows), max(highs))
    return _panels([fig for fig, _ in figs])


def study_budget_plot(data: dict[str, Any]) -> str:
    return _study_plot(data, logx=True, title=f"Δ {data['metric']} vs training budget")


def study_rate_plot(data: dict[str, Any]) -> str:
    return _study_plot(data, logx=False, title=f"Δ {data['metric']} vs masking rate")


def training_plot(data: dict[str, Any]) -> str:
    """Learning curves: loss against optimizer step, one panel per task (their units differ), a
    solid line per checkpoint for its training loss and a dashed one with markers for its dev
    loss, in the checkpoint's colour; a legend beside each panel names its checkpoints and the line
    styles drawn (so no label sits on a curve; "dev loss" only where a dev loss is plotted)."""
    from matplotlib.lines import Line2D

    panels = data["panels"]
    colors = _PALETTE + ["#393b79", "#637939"]  # 12 distinct colours: the plot's limit
    figs = _figures(len(panels), (4.8, 3.4))
    every = [line["name"] for panel in panels for line in panel["lines"]]
    shown = dict(zip(every, shorten(every, 40)))
    for (fig, ax), panel in zip(figs, panels):
        indices, with_dev = [], False
        for line in panel["lines"]:
            color = colors[line["index"] % len(colors)]
            indices.append((line["index"], line["name"]))
            if line["train"]["x"]:
                ax.plot(line["train"]["x"], line["train"]["y"], color=color, linewidth=1.4)
            if line["dev"]["x"]:
                with_dev = True
                ax.plot(line["dev"]["x"], line["dev"]["y"], color=color, linestyle="--", marker="o", markersize=4,
                        linewidth=1.2)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(panel["y_label"])
        if panel["task"]:
            ax.set_title(panel["task"], fontsize=9)
        ax.grid(alpha=0.3)
        handles = [Line2D([], [], color=colors[i % len(colors)], linewidth=2) for i, _ in indices]
        labels = [shown[name] for _, name in indices]
        handles.append(Line2D([], [], color="#555555", linewidth=1.4))
        labels.append("training loss (windowed mean)")
        if with_dev:
            handles.append(Line2D([], [], color="#555555", linestyle="--", marker="o", markersize=4, linewidth=1.2))
            labels.append("dev loss")
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        fig.suptitle("Learning curves", fontsize=10)
    return _panels([fig for fig, _ in figs])


TRAINING_PLOTS = {"learning_curves": ("Learning curves", training_plot)}


STUDY_PLOTS = {"budget": ("Δ vs training budget", study_budget_plot), "rate": ("Δ vs masking rate", study_rate_plot)}


PLOTS = {"beam": ("Quality vs beam size", beam_plot), "diversity": ("Quality vs diversity", diversity_plot),
         "seeds": ("Scores across seeds", seeds_plot), "speed": ("Decoding speed vs quality", speed_plot)}


def render_all(plot_data: dict[str, Any], prefix: str = "p", plots=None) -> list[tuple[str, str, str]]:
    """(name, title, svg) for every plot that has data, in a fixed order; ids get ``prefix``.
    ``plots``: the table of plots to draw (default: the benchmark plots; :data:`STUDY_PLOTS`)."""
    out = []
    for name, (title, fn) in (PLOTS if plots is None else plots).items():
        if name in plot_data:
            out.append((name, title, _prefixed(fn(plot_data[name]), f"{prefix}{name}")))
    return out


def _prefixed(svg: str, prefix: str) -> str:
    # ids must be unique in the page that inlines several plots
    svg = re.sub(r'\bid="', f'id="{prefix}-', svg)
    svg = re.sub(r'(href=")#', rf'\1#{prefix}-', svg)
    return re.sub(r'url\(#', f'url(#{prefix}-', svg)
