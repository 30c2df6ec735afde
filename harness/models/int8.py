"""``dtype: int8``: the Linear layers of a model in int8, CPU, through fbgemm's int8 GEMM.

Each ``nn.Linear`` (GPT-2-style ``Conv1D`` blocks become Linear first) is replaced by an
:class:`Int8Linear`:

- **weights** are symmetric int8 with one scale per output row (per channel), quantized once;
- **activations** are quantized per row (per token) at every call: a row is divided by its
  largest |value|, so one fixed int8 grid (scale 1/127, zero point 128) fits every row, then
  fbgemm multiplies the int8 rows by the int8 weights (int32 accumulation) and the result is
  scaled back row by row (``torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32``,
  which takes the grid as given instead of measuring the batch).

Layers with at least :data:`WIDE` outputs (a translation model's output layer: 8k to 250k) run the
same integer product through oneDNN's int8 linear instead (``torch.ops.onednn.qlinear_pointwise``,
the row quantized to uint8 first), where this torch build has it: on the rows of a beam-5 step it
is faster there (measured, one thread, AMD EPYC with AVX512-VNNI: 80 x 512 -> 58,101 in 13.9 ms
against fbgemm's 16.8; 80 x 256 -> 8,000 0.90 against 1.07 ms; at 16 rows and in the narrower
layers the two are equal within 2%). Both accumulate the same integers exactly; their results
differ by the order of the float32 rescaling (one or two ulps).

That is CTranslate2's int8 scheme (per-row weight and activation scales). Unlike torch's
``quantize_dynamic`` (one activation scale per *batch*, measured from its min and max; one weight
scale per matrix), a row's quantization does not depend on the other rows of its batch, and the
error is about half (measured here: 1.1e-2 vs 2.2e-2 of the largest output, random layers). The
float32 layers in between still round differently in batches padded to other lengths (~1e-6), and
a per-row rounding step can amplify that: batch settings move int8 scores by up to ~7e-3 and, now
and then, a token (CTranslate2's int8 alike; numbers in docs/engines.md).
CPUs without VNNI multiply u8 x s8 pairs into 16-bit sums that can saturate: there the
activation grid has 7 bits (scale 1/63, zero point 64; fbgemm's ``reduce_range`` for the same
reason). :data:`SCHEME` names the scheme in cell keys, so cells quantized differently are never
mixed; which grid a machine used is recorded per cell.

Embeddings, layer norms, attention and the search stay float32. Non-goals: static
(calibrated) activation scales, int4, GPUs (use float16/bfloat16 there).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

SCHEME = "rows-v4"
"""Cell-key name of the quantization scheme above (bump it when what int8 computes changes). v2: the
same quantization; the harness's own Marian step pads its attention widths (float32 rounding of the
attention moves, which per-row quantization can turn into another token), so v1 cells are not reused.
v3: layers of :data:`WIDE` or more outputs through oneDNN (their last bits move). v4: the Marian step's
self-attention runs over row-major caches (other float32 rounding of the attention, as for v2)."""

WIDE = 8000
"""Output width from which a layer runs through oneDNN's int8 linear (where available): the output
layers of translation models (vocabularies of 8k-250k), measured faster there; not the projections
inside a layer (4 x d_model is 2k-4k for translation models)."""


def available() -> bool:
    """Whether this torch build has the fbgemm int8 ops :class:`Int8Linear` calls."""
    import torch

    return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(
        torch.ops.quantized, "linear_with_input_q_dq_qweight_dq_output_fp32")


_onednn_ok: bool | None = None


def onednn_available() -> bool:
    """Whether this torch build runs oneDNN's int8 linear (checked once, on a 2 x 8 -> 4 layer)."""
    global _onednn_ok
    if _onednn_ok is None:
        import torch

        try:
            w = torch.ones((4, 8), dtype=torch.int8)
            packed = torch.ops.onednn.qlinear_prepack(w, None)
            y = torch.ops.onednn.qlinear_pointwise(torch.full((2, 8), 130, dtype=torch.uint8), 0.5, 128, packed,
                                                   torch.ones(4), torch.zeros(4, dtype=torch.long), None, 1.0, 0,
                                                   torch.float32, "none", [], "")
            _onednn_ok = bool(torch.backends.mkldnn.is_available()) and torch.equal(y, torch.full((2, 4), 8.0))
        except (AttributeError, RuntimeError, NotImplementedError):
            _onednn_ok = False
    return _onednn_ok


def vnni() -> bool:
    """Whether this CPU has int8 dot products with 32-bit accumulation (AVX512-VNNI or AVX-VNNI)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_vnni" in flags or "avx_vnni" in flags


def activation_bits() -> int:
    return 8 if vnni() else 7


_int8_linear_class = None


def int8_linear_class():
    """The :class:`Int8Linear` module class (built on first use: torch is imported lazily)."""
    global _int8_linear_class
    if _int8_linear_class is not None:
        return _int8_linear_class
    import torch

    class Int8Linear(torch.nn.Module):
        """``y = x W^T + b`` with W int8 per output row and x quantized per row at each call."""

        harness_foldable = True  # kernels.fold_final_logits_bias may move a head's bias into it

        def __init__(self, linear: torch.nn.Linear, bits: int):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            w = linear.weight.detach().float()
            scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
            with warnings.catch_warnings():  # torch announces the move of quantized tensors to torchao
                warnings.simplefilter("ignore")
                qw = torch.quantize_per_channel(w, scale, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
                self.onednn = self.out_features >= WIDE and onednn_available()
                if self.onednn:  # the same int8 weights and scales, packed for oneDNN
                    self.packed = torch.ops.onednn.qlinear_prepack(qw.int_repr(), None)
                    self.w_scale = scale.float()
                    self.w_zero = torch.zeros(w.shape[0], dtype=torch.long)
                else:
                    self.packed = torch.ops.quantized.linear_prepack(qw, None)
            self.bias = None if linear.bias is None else linear.bias.detach().float().clone()
            levels = 2 ** (bits - 1) - 1  # 127 or 63 steps on each side of the zero point
            self.x_scale, self.x_zero = 1.0 / levels, levels + 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # few ops: at a decoding step of 16 rows the dispatch of each costs as much as its work
            shape = x.shape
            if x.dim() != 2:
                x = x.reshape(-1, shape[-1])
            # max |x| per row: amax of abs is exact like the inf-norm, and 4-15x faster on the CPU than
            # linalg.vector_norm(inf) (measured: 3.4 vs 26 us at 16 x 512, 5.8 vs 92 us at 16 x 2048)
            s = x.abs().amax(dim=1, keepdim=True).clamp_min_(1e-30)
            z = x / s  # every row on the one grid
            if self.onednn:
                with warnings.catch_warnings():  # quantized tensors announce their move to torchao
                    warnings.simplefilter("ignore")
                    q = torch.quantize_per_tensor(z, self.x_scale, self.x_zero, torch.quint8).int_repr()
                y = torch.ops.onednn.qlinear_pointwise(q, self.x_scale, self.x_zero, self.packed, self.w_scale,
                                                       self.w_zero, None, 1.0, 0, torch.float32, "none", [], "")
            else:
                y = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(z, self.x_scale, self.x_zero,
                                                                                       self.packed)
            # in place: a fresh output-sized tensor (80 x 58k at an output layer under beam 5) costs
            # more in first-touch page faults than the pass itself
            y = y.mul_(s) if self.bias is None else torch.addcmul(self.bias, y, s, out=y)
            return y if len(shape) == 2 else y.reshape(*shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            kernel = "oneDNN" if self.onednn else "fbgemm"
            return f"in_features={self.in_features}, out_features={self.out_features}, int8 rows, {kernel}"

    _int8_linear_class = Int8Linear
    return Int8Linear


def quantize_linear_layers(model: Any) -> Any:
    """Replace every float32 ``nn.Linear`` of ``model`` (``Conv1D`` first made Linear) by an
    :class:`Int8Linear`, in place; returns the model in eval mode. A Linear whose weight another
    module shares (a tied output projection) is quantized too; the embedding keeps its float32
    copy."""
    import torch

    from .kernels import conv1d_as_linear, fold_final_logits_bias

    Int8Linear = int8_linear_class()
    bits = activation_bits()
    previous = torch.backends.quantized.engine
    if "fbgemm" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "fbgemm"  # the packed weights belong to the engine packing them
    try:
        conv1d_as_linear(model)
        model.eval()
        # (parent, name) pairs, not the layers: each float32 weight is freed once quantized
        targets = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
                   if type(child) is torch.nn.Linear]
        with torch.no_grad():
            for parent, name in targets:
                setattr(parent, name, Int8Linear(getattr(parent, name), bits))
        fold_final_logits_bias(model)
    finally:
        torch.backends.quantized.engine = previous
    model.harness_int8_bits = bits
    model.harness_int8_wide = sum(getattr(m, "onednn", False) for m in model.modules())  # layers through oneDNN
    return model
