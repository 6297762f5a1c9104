"""Golden data for gradient clipping, the non-finite guard and loss scaling,
computed by PyTorch itself. Writes tests/golden/clip.json.

    python3 tests/golden/gen_clip.py

Everything runs in float64 on inputs that are exactly representable in f32.
"""
import json
import math
import os

import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clip.json")
SHAPES = [[5], [2, 3], [0], [7], [1]]


def f32_exact(t):
    return t.to(torch.float32).to(torch.float64)


def rand(shape, gen, scale=1.0):
    return f32_exact(torch.randn(shape, generator=gen, dtype=torch.float32).to(torch.float64) * scale)


def flat(ts):
    return [t.reshape(-1).tolist() for t in ts]


def norm_cases():
    cases = []
    gen = torch.Generator().manual_seed(1)
    for scale_name, scale in [("unit", 1.0), ("huge", 1e20), ("tiny", 1e-20)]:
        grads = [rand(s, gen, scale) for s in SHAPES]
        for norm_type in [1.0, 2.0, math.inf]:
            params = [torch.zeros(s, requires_grad=True) for s in SHAPES]
            for p, g in zip(params, grads):
                p.grad = g.clone()
            # PyTorch refuses the inf-norm of an empty tensor (no identity); an
            # empty tensor adds nothing to any norm, so pass only non-empty ones.
            nonempty = [p for p in params if p.numel() > 0]
            total = torch.nn.utils.clip_grad_norm_(nonempty, max_norm=0.5 * scale, norm_type=norm_type)
            cases.append({
                "name": f"norm_{scale_name}_{'inf' if norm_type == math.inf else int(norm_type)}",
                "norm_type": "inf" if norm_type == math.inf else norm_type,
                "max_norm": 0.5 * scale,
                "shapes": SHAPES,
                "grads": flat(grads),
                "total_norm": total.item(),
                "clipped": flat([p.grad for p in params]),
            })
    return cases


def value_case():
    gen = torch.Generator().manual_seed(2)
    grads = [rand(s, gen) for s in SHAPES]
    params = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_value_(params, clip_value=0.3)
    return {"name": "value_0_3", "clip_value": 0.3, "shapes": SHAPES,
            "grads": flat(grads), "clipped": flat([p.grad for p in params])}


def adam_clip_trajectory(name, max_norm, norm_type, per_group, clip_value=None, steps=8):
    gen = torch.Generator().manual_seed(3)
    params = [torch.nn.Parameter(rand(s, gen)) for s in SHAPES]
    p0 = [p.detach().clone() for p in params]
    groups = [[0, 2, 4], [1, 3]]
    opt = torch.optim.Adam([{"params": [params[i] for i in g]} for g in groups], lr=0.01, foreach=False)
    all_grads, traj, norms = [], [], []
    for _ in range(steps):
        grads = [rand(s, gen, 2.0) for s in SHAPES]
        all_grads.append(flat(grads))
        for p, g in zip(params, grads):
            p.grad = g.clone()
        if clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, clip_value)
        ne = [p.numel() > 0 for p in params]  # see norm_cases: skip empty tensors
        if per_group:
            n = [torch.nn.utils.clip_grad_norm_([params[i] for i in g if ne[i]], max_norm, norm_type).item() for g in groups]
        else:
            n = [torch.nn.utils.clip_grad_norm_([p for p in params if p.numel() > 0], max_norm, norm_type).item()]
        norms.append(n)
        opt.step()
        traj.append(flat([p.detach() for p in params]))
    return {"name": name, "lr": 0.01, "max_norm": max_norm,
            "norm_type": "inf" if norm_type == math.inf else norm_type,
            "per_group": per_group, "clip_value": clip_value, "groups": groups,
            "shapes": SHAPES, "params0": flat(p0), "grads": all_grads, "params": traj, "norms": norms}


def scaler_trajectory():
    """torch.amp.GradScaler with Adam and global-norm clipping; the user's raw
    gradients are the true gradients times the current scale; NaN or inf is
    planted in one element of one tensor at some steps."""
    gen = torch.Generator().manual_seed(4)
    params = [torch.nn.Parameter(rand(s, gen)) for s in SHAPES]
    p0 = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=0.01, foreach=False)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_factor=2.0,
                                  backoff_factor=0.5, growth_interval=3)
    bad = {2: ("nan", 3, 1), 6: ("inf", 1, 4), 7: ("-inf", 0, 0)}
    raw, traj, scales, found = [], [], [], []
    for step in range(12):
        scaler.scale(torch.tensor(1.0))  # what scaler.scale(loss) does: lazily creates the scale
        s = scaler.get_scale()
        true = [rand(sh, gen, 0.5) for sh in SHAPES]
        grads = [f32_exact(t * s) for t in true]
        if step in bad:
            kind, k, i = bad[step]
            grads[k].view(-1)[i] = float(kind)
        raw.append([[x if math.isfinite(x) else str(x) for x in t] for t in flat(grads)])
        for p, g in zip(params, grads):
            p.grad = g.clone()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p for p in params if p.numel() > 0], 1.0)
        found.append(sum(v.item() for v in scaler._found_inf_per_device(opt).values()) > 0)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        traj.append(flat([p.detach() for p in params]))
    return {"name": "grad_scaler_adam_clip", "lr": 0.01, "init_scale": 2.0 ** 10, "growth_factor": 2.0,
            "backoff_factor": 0.5, "growth_interval": 3, "max_norm": 1.0,
            "shapes": SHAPES, "params0": flat(p0), "raw_grads": raw, "found_inf": found,
            "scale_after": scales, "params": traj}


def main():
    doc = {
        "torch_version": torch.__version__,
        "generated_by": "tests/golden/gen_clip.py",
        "norms": norm_cases(),
        "value": value_case(),
        "trajectories": [
            adam_clip_trajectory("adam_clip_global_l2", 1.0, 2.0, False),
            adam_clip_trajectory("adam_clip_global_l1", 2.0, 1.0, False),
            adam_clip_trajectory("adam_clip_global_inf", 0.5, math.inf, False),
            adam_clip_trajectory("adam_clip_per_group_l2", 1.0, 2.0, True),
            adam_clip_trajectory("adam_clip_value_then_norm", 1.0, 2.0, False, clip_value=0.7),
        ],
        "scaler": scaler_trajectory(),
    }
    with open(OUT, "w") as f:
        json.dump(doc, f)
    print(f"wrote {OUT} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
