#!/usr/bin/env python3
"""Times PyTorch's own fused Adam / AdamW (torch.optim.Adam(fused=True)) on the
same tensors wgpu-optim's harness uses, for scripts/device-check step 5.

    python3 scripts/torch_fused_adam.py --out torch.json [--dry]

On CUDA: CUDA events around each step, after warm-up, median of --reps.
--dry runs on the CPU (fused=True has a CPU kernel since torch 2.4) at small
sizes, wall clock, so CI-free dry runs of the check exercise this script.
The mix is the harness's GPT-2-like mix (wgpu_optim::bench::gpt2_like_layout:
50 tensors, 3,748,864 params); single tensors are 2^k elements.
"""

import argparse
import json
import statistics
import time

import torch


def gpt2_like_shapes():
    shapes = [(2048, 256), (256, 256)]
    for _ in range(4):
        shapes += [(256,), (256,), (256, 768), (768,), (256, 256), (256,),
                   (256,), (256,), (256, 1024), (1024,), (1024, 256), (256,)]
    return shapes


def time_steps(opt, device, reps, warmup=3):
    for _ in range(warmup):
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        if device == "cuda":
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            opt.step()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def case(name, shapes, kind, device, reps):
    params = [torch.full(s, 0.5, device=device, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.full_like(p, 0.01)
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    opt = cls(params, lr=1e-3, fused=True)
    n = sum(p.numel() for p in params)
    s = time_steps(opt, device, reps)
    return {"optimizer": kind, "case": name, "tensors": len(shapes), "params": n,
            "seconds": s, "bytes_per_param": 28, "gb_per_s": 28 * n / s / 1e9}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--dry", action="store_true")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--harness", help="the harness's --json output: print ours / torch per case")
    a = ap.parse_args()
    device = "cpu" if a.dry or not torch.cuda.is_available() else "cuda"
    sizes = [16, 18] if a.dry else list(range(20, 29, 2))
    rows = []
    for kind in ("adam", "adamw"):
        rows.append(case("gpt2_mix", gpt2_like_shapes(), kind, device, 5 if a.dry else a.reps))
        for k in sizes:
            rows.append(case(f"single_2^{k}", [(1 << k,)], kind, device, 5 if a.dry else a.reps))
    doc = {"torch": torch.__version__, "device": device,
           "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
           "timing": "cuda events" if device == "cuda" else "wall clock", "rows": rows}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    for r in rows:
        print(f"torch {r['optimizer']:<6} {r['case']:<12} {r['params']:>11} params "
              f"{r['seconds'] * 1e3:9.3f} ms {r['gb_per_s']:8.1f} GB/s")
    if a.harness:
        compare(a.harness, rows)


def measurements(node):
    """Every harness measurement (a dict with optimizer, layout, params, time_s)."""
    if isinstance(node, dict):
        if {"optimizer", "layout", "params", "time_s", "dispatch"} <= node.keys():
            yield node
        for v in node.values():
            yield from measurements(v)
    elif isinstance(node, list):
        for v in node:
            yield from measurements(v)


def compare(path, rows):
    with open(path) as f:
        ours = [m for m in measurements(json.load(f)) if m["dispatch"] == "fused"]
    print(f"{'optimizer':<8} {'case':<12} {'ours ms':>10} {'torch ms':>10} {'ours/torch':>11}")
    for r in rows:
        layout = "gpt2_like" if r["case"] == "gpt2_mix" else "single"
        match = [m for m in ours if m["optimizer"] == r["optimizer"]
                 and m["layout"] == layout and m["params"] == r["params"]]
        if not match:
            print(f"{r['optimizer']:<8} {r['case']:<12} {'(not run)':>10}")
            continue
        t = match[0]["time_s"]
        print(f"{r['optimizer']:<8} {r['case']:<12} {t * 1e3:10.3f} {r['seconds'] * 1e3:10.3f} "
              f"{t / r['seconds']:11.3f}")


if __name__ == "__main__":
    main()
