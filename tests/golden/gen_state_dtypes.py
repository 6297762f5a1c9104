#!/usr/bin/env python3
"""Golden data for wgpu-optim's low-precision optimizer states, computed by
bitsandbytes (8-bit blockwise optimizers) and PyTorch (bf16 rounding).

Usage (from the crate root):

    python3 tests/golden/gen_state_dtypes.py

Writes tests/golden/state_dtypes.json next to this script. Deterministic (a
torch.Generator seeded from a CRC32 of each case's name).

- "maps": bitsandbytes.functional.create_dynamic_map(signed=True / False),
  the 256 f32 values of each map, taken before any quantization runs
  (bitsandbytes' CPU quantizer then sets the signed map's entry 0 to -1.0 in
  place; the crate's map has -1.0 there from the start).
- "quantization": bitsandbytes' quantize_blockwise (CPU, blocks of 256) of
  2560 random values with each map: the values, codes and absmax.
- "bf16": f32 values and the bits torch's .to(torch.bfloat16) gives them
  (round to nearest even), ties and overflow included.
- "cases": bitsandbytes' 8-bit optimizers (Adam8bit, AdamW8bit, SGD8bit with
  momentum, RMSprop8bit, Adagrad8bit, Lion8bit), run on CPU in float32 for 5
  steps (block-wise, min_8bit_size 256, so the 10-element tensor keeps
  32-bit state as in bitsandbytes), with each case's initial params, the grads of
  every step, the params after every step and the dequantized states after
  the last one (bitsandbytes' state1 / state2 under the crate's names).
  Inputs are drawn in float32. Floats are written with 9 significant digits,
  which round-trip float32 exactly.

Requirements: pip install torch bitsandbytes   (bitsandbytes >= 0.49 runs
its 8-bit optimizers on CPU)
"""

import json
import os
import struct
import warnings
import zlib

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402

STEPS = 5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "state_dtypes.json")
SHAPES = [[20, 30], [300], [10]]
# bitsandbytes' min_8bit_size; the 10-element tensor keeps 32-bit states.
MIN_8BIT = 256

# (name, bitsandbytes class, kwargs, the crate's optimizer and config,
#  the crate's names of state1 / state2)
CASES = [
    ("adam8bit", bnb.optim.Adam8bit, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8),
     "adam", dict(lr=1e-2), ["exp_avg", "exp_avg_sq"]),
    ("adamw8bit", bnb.optim.AdamW8bit, dict(lr=1e-2, betas=(0.85, 0.99), eps=1e-8, weight_decay=0.05),
     "adamw", dict(lr=1e-2, beta1=0.85, beta2=0.99, weight_decay=0.05), ["exp_avg", "exp_avg_sq"]),
    ("sgd8bit_momentum", bnb.optim.SGD8bit, dict(lr=0.05, momentum=0.9),
     "sgd", dict(lr=0.05, momentum=0.9), ["momentum_buffer"]),
    ("rmsprop8bit", bnb.optim.RMSprop8bit, dict(lr=1e-3, alpha=0.99, eps=1e-8),
     "rmsprop", dict(lr=1e-3, alpha=0.99, eps=1e-8), ["square_avg"]),
    ("adagrad8bit", bnb.optim.Adagrad8bit, dict(lr=0.05, eps=1e-10),
     "adagrad", dict(lr=0.05, eps=1e-10), ["sum"]),
    ("lion8bit", bnb.optim.Lion8bit, dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1),
     "lion", dict(lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1), ["exp_avg"]),
]


def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def maps():
    return {
        "signed": [bits(x) for x in F.create_dynamic_map(signed=True).tolist()],
        "unsigned": [bits(x) for x in F.create_dynamic_map(signed=False).tolist()],
    }


def quantization():
    """bitsandbytes' quantize_blockwise (CPU) of 2560 values, with each map."""
    g = torch.Generator().manual_seed(2)
    out = {}
    for key, signed in [("signed", True), ("unsigned", False)]:
        x = (torch.randn(2560, generator=g) * 0.05).float()
        if not signed:
            x = x.abs()
        q, st = F.quantize_blockwise(x, code=F.create_dynamic_map(signed=signed), blocksize=256)
        out[key] = {
            "x_bits": [bits(v) for v in x.tolist()],
            "codes": q.tolist(),
            "absmax_bits": [bits(v) for v in st.absmax.tolist()],
        }
    return out


def bf16_cases():
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(200, generator=g, dtype=torch.float32).tolist()
    one = 1.0
    # ties: 1 + 2^-8 (to 1), 1 + 3 * 2^-8 (to 1 + 2^-6); overflow; the largest finite bf16
    xs += [one + 2.0 ** -8, one + 3 * 2.0 ** -8, 3.4e38, -3.4e38, 3.3895313892515355e38, 0.0, -0.0, 1e-40]
    xs = [struct.unpack("<f", struct.pack("<f", x))[0] for x in xs]
    t = torch.tensor(xs, dtype=torch.float32)
    b = t.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF
    return {"f32_bits": [bits(x) for x in xs], "bf16_bits": b.tolist()}


def f9(v):
    return [float("%.9g" % x) for x in v]


def run(name, cls, kwargs, crate_name, crate_cfg, state_names):
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    params = [torch.nn.Parameter((torch.rand(s, generator=g) * 2 - 1).float()) for s in SHAPES]
    p0 = [f9(p.detach().clone().flatten().tolist()) for p in params]
    opt = cls(params, min_8bit_size=MIN_8BIT, **kwargs)
    grads, traj = [], []
    for _ in range(STEPS):
        gs = [(torch.randn(s, generator=g) * 0.5).float() for s in SHAPES]
        for p, gr in zip(params, gs):
            p.grad = gr.clone()
        opt.step()
        grads.append([f9(gr.flatten().tolist()) for gr in gs])
        traj.append([f9(p.detach().flatten().tolist()) for p in params])
    state = {n: [] for n in state_names}
    for p in params:
        st = opt.state[p]
        for i, n in enumerate(state_names):
            key = "state%d" % (i + 1)
            s = st[key]
            if s.dtype == torch.uint8:
                s = F.dequantize_blockwise(s, absmax=st["absmax%d" % (i + 1)], code=st["qmap%d" % (i + 1)], blocksize=256)
            state[n].append(f9(s.float().flatten().tolist()))
    return {
        "name": name,
        "bitsandbytes": cls.__name__,
        "optimizer": crate_name,
        "config": crate_cfg,
        "shapes": SHAPES,
        "min_8bit_size": MIN_8BIT,
        "params0": p0,
        "grads": grads,
        "params": traj,
        "state": state,
    }


def main():
    doc = {
        "bitsandbytes_version": bnb.__version__,
        "torch_version": torch.__version__,
        "steps": STEPS,
        "maps": maps(),
        "bf16": bf16_cases(),
        "quantization": quantization(),
        "cases": [run(*c) for c in CASES],
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, allow_nan=False, separators=(",", ":"))
    print("wrote", OUT, len(doc["cases"]), "cases")


if __name__ == "__main__":
    main()
