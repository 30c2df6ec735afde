"""``greedy``: pick the most probable token at each step (placeholder on generate())."""
from __future__ import annotations

from pydantic import Field

from harness.api import Decoder, Hypothesis
from harness.hookspecs import hookimpl
from harness.params import Params


class GreedyParams(Params):
    max_new_tokens: int = Field(128, ge=1, description="stop after this many generated tokens")
    batch_size: int = Field(32, ge=1, description="sentences per batch")


class Greedy(Decoder):
    name = "greedy"
    description = "Greedy search: the argmax token at every step."
    Params = GreedyParams

    def decode(self, model, sources, ctx):
        import torch

        out = []
        ids = model.encode(sources)
        for i in range(0, len(ids), self.params.batch_size):
            batch = ids[i:i + self.params.batch_size]
            enc = model.tokenizer.pad({"input_ids": batch}, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                gen = model.model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=self.params.max_new_tokens)
            if not model.is_encoder_decoder:
                gen = gen[:, enc["input_ids"].shape[1]:]
            out += [[Hypothesis(model.decode_text(g))] for g in gen.tolist()]
        return out


@hookimpl
def register_decoders(register):
    register(Greedy)
