"""Who is compared with whom: configuration labels, the baseline of each factor, paired cells.

A configuration is compared with the configuration that differs from it in one factor only,
the baseline's value of that factor; cells are paired by seed. Non-goals: comparisons across
several factors at once.
"""
from __future__ import annotations

from .model import NO_DECODER, BenchmarkReport, Config

def pick_baseline(wanted: str | None, labels: list[str], defaults: tuple[str, ...]) -> str | None:
    if not labels:
        return None
    if wanted and wanted in labels:
        return wanted
    for d in defaults:
        if d in labels:
            return d
    return labels[0]


# What a reduced-precision mark means, for the note under the benchmark's tables.
PRECISION_TEXT = {
    "int8": "int8: Linear layers in int8, weights and activations per row (CPU)",
    "float16": "float16: 16-bit floating-point weights and activations",
    "bfloat16": "bfloat16: 16-bit brain floating-point weights and activations",
    "auto16": "auto16: float16 or bfloat16, chosen for the GPU",
}


def reduced_precision(precision: str | None) -> str | None:
    """The mark of a cell that decoded below float32 (``int8``, ``ct2:int8_float32``...), else None."""
    if not precision:
        return None
    name = precision.split(":", 1)[1] if precision.startswith("ct2:") else precision
    return None if name == "float32" else precision


def precision_marks(cfg: Config) -> list[str]:
    """The reduced precisions a configuration's cells decoded in (normally none, or one)."""
    return list(dict.fromkeys(m for m in (reduced_precision(c.precision) for c in cfg.cells) if m))


def precision_note(configs: list[Config]) -> str | None:
    marks = list(dict.fromkeys(m for c in configs for m in precision_marks(c)))
    if not marks:
        return None
    texts = [PRECISION_TEXT.get(m) or (f"{m}: CTranslate2 compute_type {m[4:]}" if m.startswith("ct2:") else m)
             for m in marks]
    return ("Reduced precision: configurations marked [" + "], [".join(marks) + "] decoded below float32 ("
            + "; ".join(texts) + "); their outputs can differ from float32 decoding of the same weights.")


def config_labels(configs: list[Config]) -> None:
    """Label each configuration by the factors that vary within its benchmark, and mark the
    ones that decoded in reduced precision (``beam5 [int8]``)."""
    varying = [attr for attr in ("model", "strategy", "decoder") if len({getattr(c, attr) for c in configs}) > 1]
    if not varying:
        varying = ["decoder"] if configs and configs[0].decoder != NO_DECODER else ["strategy"]
    for c in configs:
        c.label = " / ".join(getattr(c, a) for a in varying)
        if marks := precision_marks(c):
            c.label += " [" + ", ".join(marks) + "]"


def pair_baseline(cfg: Config, by_key: dict[tuple, Config], base_dec: str | None, base_strat: str | None,
                  base_model: str | None = None) -> Config | None:
    """The configuration that differs from ``cfg`` in one factor: the baseline's value of it.
    A baseline model (only when the config names one) is the first factor: int8/beam5 is then
    compared with float32/beam5, not with int8/greedy."""
    if base_model is not None and cfg.model != base_model:
        return by_key.get((cfg.benchmark, base_model, cfg.strategy, cfg.decoder))
    if cfg.decoder != NO_DECODER and base_dec is not None and cfg.decoder != base_dec:
        return by_key.get((cfg.benchmark, cfg.model, cfg.strategy, base_dec))
    if base_strat is not None and cfg.strategy != base_strat:
        return by_key.get((cfg.benchmark, cfg.model, base_strat, cfg.decoder))
    return None


def paired_cells(br: BenchmarkReport, configs: dict[tuple, Config], base_dec, base_strat) -> list[tuple[str, str]]:
    out = []
    for cfg in br.configs:
        base = pair_baseline(cfg, configs, base_dec, base_strat, br.base_model)
        if base is None:
            continue
        for c in cfg.cells:
            b = base.cell_for_seed(c.seed)
            if b is not None and b.key != c.key:
                out.append((c.key, b.key))
    return list(dict.fromkeys(out))
