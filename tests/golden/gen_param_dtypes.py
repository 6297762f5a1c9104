#!/usr/bin/env python3
"""Golden data for wgpu-optim's bfloat16 parameters, computed by PyTorch.

Usage (from the crate root):

    python3 tests/golden/gen_param_dtypes.py

Writes tests/golden/param_dtypes.json next to this script. Deterministic:
every case draws its inputs from numpy's default_rng with a fixed seed (the
seeds are stored in "meta").

Records torch's in-place update of torch.bfloat16 parameters by the CPU
single-tensor implementation (`foreach=False`, `fused=False`): the params and
the grads are bf16, so the optimizer states (torch creates them with
zeros_like(param)) are bf16 as well. Cases:

- "adamw_bf16": torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
  weight_decay=0.01);
- "adam_bf16": torch.optim.Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
  weight_decay=0);
- "sgd_bf16": torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=1e-3).

Each case has two tensors, of shapes [37] and [8, 9], initial params drawn
uniform in [-1, 1) and, for each of 6 steps, grads uniform in [-0.5, 0.5)
(float64 draws, in the order p0 of every tensor, then step by step the grads
of every tensor), each rounded to bf16 (round to nearest even), so every input
is an exact bf16 value. A case records its initial params, every step's
grads, the params after every step and the states after the last step
(exp_avg / exp_avg_sq for Adam and AdamW, momentum_buffer for SGD), flat in
row-major order, as the exact float values of the bf16 numbers.

torch computes each tensor op in bf16 (its CPU kernels widen to float inside
one op and round the op's result to bf16), so its trajectory rounds several
times per element and step; wgpu-optim computes the whole update in f32 and
rounds once per store. As a sanity check the script also runs every case in
float64 from the same inputs and prints (does not record) the largest
distance between the bf16 trajectory and the float64 one, in bf16 ulps at
the float64 value (large next to values that cross or approach 0, where
torch's separately rounded terms cancel), and the largest absolute one.

Requirements: pip install torch numpy
"""

import json
import math
import os
import sys

import numpy as np
import torch

STEPS = 6
SHAPES = [[37], [8, 9]]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "param_dtypes.json")
NOTE = (
    "torch computes each tensor op in bf16 (its CPU kernels widen to float "
    "inside one op and round the op's result to bf16), so its trajectory "
    "rounds several times per element and step; wgpu-optim computes the whole "
    "update in f32 and rounds once per store"
)

# (name, seed, optimizer, torch class, torch kwargs, recorded hyperparameters,
#  state names)
CASES = [
    ("adamw_bf16", 20250101, "adamw", torch.optim.AdamW,
     dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
     dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01),
     ["exp_avg", "exp_avg_sq"]),
    ("adam_bf16", 20250102, "adam", torch.optim.Adam,
     dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
     dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0),
     ["exp_avg", "exp_avg_sq"]),
    ("sgd_bf16", 20250103, "sgd", torch.optim.SGD,
     dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-3, nesterov=False),
     dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-3, nesterov=False),
     ["momentum_buffer"]),
]


def draw(rng, shape, lo, hi):
    """A bf16 tensor of uniform [lo, hi) float64 draws, rounded to bf16."""
    return torch.from_numpy(rng.uniform(lo, hi, size=shape)).to(torch.bfloat16)


def flat(t):
    # bf16 -> float32 is exact; tolist() gives the Python floats of those values.
    return t.detach().float().flatten().tolist()


def run(cls, kwargs, p0, grads, dtype, state_names):
    params = [torch.nn.Parameter(p.to(dtype).clone()) for p in p0]
    opt = cls(params, foreach=False, fused=False, **kwargs)
    traj = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.to(dtype).clone()
        opt.step()
        traj.append([p.detach().clone() for p in params])
    states = {}
    for n in state_names:
        states[n] = [opt.state[p][n].detach().clone() for p in params]
        for s in states[n]:
            assert s.dtype == dtype, (n, s.dtype)
    for p in params:
        assert p.dtype == dtype
    return traj, states


def ulps(a, ref):
    """max |a - ref| in bf16 ulps at ref: 2^(floor(log2|ref|) - 7)."""
    a = a.double().flatten().tolist()
    ref = ref.double().flatten().tolist()
    worst = 0.0
    for x, r in zip(a, ref):
        # at 0, the spacing of bf16 subnormals
        e = math.frexp(abs(r))[1] - 1 if r != 0 else -126
        u = 2.0 ** (max(e, -126) - 7)
        worst = max(worst, abs(x - r) / u)
    return worst


def case(name, seed, optimizer, cls, kwargs, hyper, state_names):
    rng = np.random.default_rng(seed)
    p0 = [draw(rng, s, -1.0, 1.0) for s in SHAPES]
    grads = [[draw(rng, s, -0.5, 0.5) for s in SHAPES] for _ in range(STEPS)]

    traj, states = run(cls, kwargs, p0, grads, torch.bfloat16, state_names)
    traj64, states64 = run(cls, kwargs, p0, grads, torch.float64, state_names)

    worst_p = [max(ulps(a, r) for a, r in zip(ts, rs)) for ts, rs in zip(traj, traj64)]
    worst_s = {n: max(ulps(a, r) for a, r in zip(states[n], states64[n])) for n in state_names}
    worst_abs = max(float((a.double() - r).abs().max()) for ts, rs in zip(traj, traj64) for a, r in zip(ts, rs))
    print("%-11s params vs float64, max bf16 ulps per step: %s; overall %.3g (max abs diff %.3g)"
          % (name, " ".join("%.3g" % w for w in worst_p), max(worst_p), worst_abs))
    print("%-11s final states vs float64, max bf16 ulps: %s"
          % (name, ", ".join("%s %.3g" % (n, w) for n, w in worst_s.items())))

    return {
        "name": name,
        "optimizer": optimizer,
        "hyperparameters": hyper,
        "shapes": SHAPES,
        "p0": [flat(p) for p in p0],
        "grads": [[flat(g) for g in gs] for gs in grads],
        "params": [[flat(p) for p in ps] for ps in traj],
        "state": {n: [flat(s) for s in states[n]] for n in state_names},
    }


def main():
    doc = {
        "meta": {
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "python_version": sys.version.split()[0],
            "dtype": "bfloat16",
            "implementation": "torch CPU single-tensor (foreach=False, fused=False)",
            "steps": STEPS,
            "seeds": {c[0]: c[1] for c in CASES},
            "note": NOTE,
        },
        "cases": [case(*c) for c in CASES],
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, allow_nan=False, separators=(",", ":"))
    print("wrote", OUT, len(doc["cases"]), "cases,", os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
