#!/usr/bin/env python3
"""Generate tests/golden/schedules.json from torch.optim.lr_scheduler.

Run from the repository root (needs only torch, CPU build is fine):

    python3 tests/golden/gen_schedules.py

Every case builds torch.optim.SGD on one dummy parameter with `lr = base`
(and `momentum` where a cycling scheduler needs it), constructs the
scheduler(s) exactly as a user would and records `param_groups[0]["lr"]`
(and `["momentum"]` for cycling schedulers) after construction (step 0)
and after each `scheduler.step()` call. These are PyTorch's step-by-step
(recursive, "chainable") values, not its closed forms.

The "kind"/"args" of each case mirror the Rust constructors in
`wgpu_optim::schedule::Schedule`, so tests/schedules.rs can rebuild each
schedule from the JSON alone.
"""

import json
import math
import os
import warnings

import torch

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float64)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedules.json")
S = torch.optim.lr_scheduler


def make_opt(base, momentum=None):
    p = torch.nn.Parameter(torch.zeros(1))
    if momentum is None:
        return torch.optim.SGD([p], lr=base)
    return torch.optim.SGD([p], lr=base, momentum=momentum)


def fval(x):
    """JSON has no NaN/inf: encode non-finite floats as strings."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


# ---------------------------------------------------------------- builders
# Each spec is {"kind": ..., "args": {...}}; build(opt, spec) constructs the
# torch scheduler for it. `base` is the optimizer's lr (torch's base_lrs).


def build(opt, spec):
    k, a = spec["kind"], spec["args"]
    if k == "constant":
        return S.LambdaLR(opt, lambda e: 1.0)
    if k == "constant_lr":
        return S.ConstantLR(opt, factor=a["factor"], total_iters=a["total_iters"])
    if k == "linear":
        return S.LinearLR(
            opt,
            start_factor=a["start_factor"],
            end_factor=a["end_factor"],
            total_iters=a["total_iters"],
        )
    if k == "step":
        return S.StepLR(opt, step_size=a["step_size"], gamma=a["gamma"])
    if k == "multi_step":
        return S.MultiStepLR(opt, milestones=a["milestones"], gamma=a["gamma"])
    if k == "exponential":
        return S.ExponentialLR(opt, gamma=a["gamma"])
    if k == "polynomial":
        return S.PolynomialLR(opt, total_iters=a["total_iters"], power=a["power"])
    if k == "cosine_annealing":
        return S.CosineAnnealingLR(opt, T_max=a["t_max"], eta_min=a["eta_min"])
    if k == "cosine_warm_restarts":
        return S.CosineAnnealingWarmRestarts(
            opt, T_0=a["t_0"], T_mult=a["t_mult"], eta_min=a["eta_min"]
        )
    if k == "cyclic":
        mode = a["mode"]
        mom = a["cycle_momentum"]
        kw = {}
        if mom is not None:
            kw = dict(cycle_momentum=True, base_momentum=mom[0], max_momentum=mom[1])
        else:
            kw = dict(cycle_momentum=False)
        return S.CyclicLR(
            opt,
            base_lr=a["base_lr"],
            max_lr=a["max_lr"],
            step_size_up=a["step_size_up"],
            step_size_down=a["step_size_down"],
            mode=mode["mode"],
            gamma=mode.get("gamma", 1.0),
            **kw,
        )
    if k == "one_cycle":
        mom = a["cycle_momentum"]
        kw = {}
        if mom is not None:
            kw = dict(cycle_momentum=True, base_momentum=mom[0], max_momentum=mom[1])
        else:
            kw = dict(cycle_momentum=False)
        return S.OneCycleLR(
            opt,
            max_lr=a["max_lr"],
            total_steps=a["total_steps"],
            pct_start=a["pct_start"],
            anneal_strategy=a["anneal"],
            div_factor=a["div_factor"],
            final_div_factor=a["final_div_factor"],
            three_phase=a["three_phase"],
            **kw,
        )
    if k == "sequential":
        subs = [build(opt, s) for s in a["schedules"]]
        return S.SequentialLR(opt, subs, milestones=a["milestones"])
    if k == "chained":
        subs = [build(opt, s) for s in a["schedules"]]
        return S.ChainedScheduler(subs, optimizer=opt)
    if k == "warmup_cosine":
        # Reference formula of the Rust shorthand (HF-style warmup from 0),
        # expressed as a LambdaLR over base = peak_lr.
        peak, w, t, fin = a["peak_lr"], a["warmup_steps"], a["total_steps"], a["final_lr"]

        def f(e):
            if e < w:
                return e / w
            if e >= t:
                return fin / peak
            c = (1.0 + math.cos(math.pi * (e - w) / (t - w))) / 2.0
            return (fin + (peak - fin) * c) / peak

        return S.LambdaLR(opt, f)
    if k == "warmup_constant":
        w = a["warmup_steps"]
        return S.LambdaLR(opt, lambda e: e / w if e < w else 1.0)
    raise ValueError(k)


def base_of(spec):
    a = spec["args"]
    for key in ("base", "lr", "peak_lr"):
        if key in a:
            return a[key]
    if spec["kind"] in ("sequential", "chained"):
        return base_of(a["schedules"][0])
    if spec["kind"] == "cyclic":
        return a["base_lr"]
    if spec["kind"] == "one_cycle":
        return a["max_lr"]
    raise ValueError(spec)


def run_case(name, spec, steps, momentum=False):
    opt = make_opt(base_of(spec), momentum=0.9 if momentum else None)
    sch = build(opt, spec)
    lrs = [float(opt.param_groups[0]["lr"])]
    moms = [float(opt.param_groups[0]["momentum"])] if momentum else None
    for _ in range(steps):
        opt.step()
        sch.step()
        lrs.append(float(opt.param_groups[0]["lr"]))
        if momentum:
            moms.append(float(opt.param_groups[0]["momentum"]))
    case = {"name": name, "kind": spec["kind"], "args": spec["args"], "lrs": lrs}
    if momentum:
        case["momentum"] = moms
    return case


def sp(kind, **args):
    return {"kind": kind, "args": args}


CASES = [
    ("constant", sp("constant", lr=0.05), 30),
    ("constant_lr_half_4", sp("constant_lr", base=0.1, factor=0.5, total_iters=4), 30),
    ("constant_lr_third_5", sp("constant_lr", base=0.3, factor=1.0 / 3, total_iters=5), 30),
    ("constant_lr_one", sp("constant_lr", base=0.3, factor=1.0, total_iters=3), 30),
    ("linear_warmup", sp("linear", base=0.1, start_factor=0.25, end_factor=1.0, total_iters=10), 40),
    ("linear_decay", sp("linear", base=0.2, start_factor=1.0, end_factor=0.1, total_iters=20), 40),
    ("linear_to_zero", sp("linear", base=0.2, start_factor=0.5, end_factor=0.0, total_iters=7), 30),
    ("linear_third", sp("linear", base=0.01, start_factor=1.0 / 3, end_factor=1.0, total_iters=5), 30),
    ("step_7_half", sp("step", base=0.1, step_size=7, gamma=0.5), 60),
    ("step_3_09", sp("step", base=1.0, step_size=3, gamma=0.9), 60),
    ("multi_step", sp("multi_step", base=0.1, milestones=[5, 12, 30], gamma=0.3), 50),
    ("multi_step_at_0", sp("multi_step", base=0.1, milestones=[0, 10], gamma=0.5), 30),
    ("exponential_095", sp("exponential", base=0.1, gamma=0.95), 100),
    ("exponential_grow", sp("exponential", base=1e-4, gamma=1.01), 100),
    ("polynomial_linear", sp("polynomial", base=0.1, total_iters=20, power=1.0), 40),
    ("polynomial_sq", sp("polynomial", base=0.1, total_iters=15, power=2.0), 40),
    ("polynomial_sqrt", sp("polynomial", base=0.5, total_iters=25, power=0.5), 40),
    ("cosine_10", sp("cosine_annealing", base=0.1, t_max=10, eta_min=0.0), 65),
    ("cosine_7_min", sp("cosine_annealing", base=0.1, t_max=7, eta_min=0.001), 60),
    ("cosine_1", sp("cosine_annealing", base=0.1, t_max=1, eta_min=0.01), 30),
    ("cosine_100", sp("cosine_annealing", base=0.05, t_max=100, eta_min=0.0), 450),
    ("cosine_50_min", sp("cosine_annealing", base=0.1, t_max=50, eta_min=1e-4), 230),
    ("cosine_1000_min", sp("cosine_annealing", base=0.1, t_max=1000, eta_min=1e-5), 2600),
    ("warm_restarts_10", sp("cosine_warm_restarts", base=0.1, t_0=10, t_mult=1, eta_min=0.0), 45),
    ("warm_restarts_5x2", sp("cosine_warm_restarts", base=0.1, t_0=5, t_mult=2, eta_min=0.001), 80),
    ("warm_restarts_3x3", sp("cosine_warm_restarts", base=0.2, t_0=3, t_mult=3, eta_min=0.0), 60),
    ("warm_restarts_1", sp("cosine_warm_restarts", base=0.2, t_0=1, t_mult=2, eta_min=0.0), 40),
]

CYCLING = [
    ("cyclic_triangular",
     sp("cyclic", base_lr=0.001, max_lr=0.01, step_size_up=5, step_size_down=None,
        mode={"mode": "triangular"}, cycle_momentum=[0.8, 0.9]), 45),
    ("cyclic_triangular2",
     sp("cyclic", base_lr=0.001, max_lr=0.1, step_size_up=4, step_size_down=6,
        mode={"mode": "triangular2"}, cycle_momentum=[0.85, 0.95]), 60),
    ("cyclic_exp_range",
     sp("cyclic", base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5,
        mode={"mode": "exp_range", "gamma": 0.97}, cycle_momentum=None), 50),
    ("cyclic_exp_range_mom",
     sp("cyclic", base_lr=0.01, max_lr=0.1, step_size_up=7, step_size_down=2,
        mode={"mode": "exp_range", "gamma": 0.99}, cycle_momentum=[0.8, 0.9]), 50),
    ("one_cycle_cos",
     sp("one_cycle", max_lr=0.1, total_steps=50, pct_start=0.3, anneal="cos",
        div_factor=25.0, final_div_factor=1e4, three_phase=False,
        cycle_momentum=[0.85, 0.95]), 50),
    ("one_cycle_linear_3phase",
     sp("one_cycle", max_lr=0.5, total_steps=40, pct_start=0.25, anneal="linear",
        div_factor=10.0, final_div_factor=100.0, three_phase=True,
        cycle_momentum=[0.8, 0.9]), 40),
    ("one_cycle_cos_3phase",
     sp("one_cycle", max_lr=0.02, total_steps=33, pct_start=0.4, anneal="cos",
        div_factor=25.0, final_div_factor=1e4, three_phase=True,
        cycle_momentum=None), 33),
    ("one_cycle_short_warmup",
     sp("one_cycle", max_lr=0.1, total_steps=30, pct_start=0.02, anneal="cos",
        div_factor=25.0, final_div_factor=1e4, three_phase=False,
        cycle_momentum=None), 30),
]

COMPOSITE = [
    ("sequential_warmup_cosine",
     sp("sequential",
        schedules=[sp("linear", base=0.1, start_factor=0.1, end_factor=1.0, total_iters=5),
                   sp("cosine_annealing", base=0.1, t_max=20, eta_min=0.0)],
        milestones=[5]), 60),
    ("sequential_three",
     sp("sequential",
        schedules=[sp("constant_lr", base=0.1, factor=0.5, total_iters=3),
                   sp("exponential", base=0.1, gamma=0.9),
                   sp("step", base=0.1, step_size=4, gamma=0.5)],
        milestones=[6, 15]), 40),
    ("sequential_restarts",
     sp("sequential",
        schedules=[sp("linear", base=0.05, start_factor=0.2, end_factor=1.0, total_iters=4),
                   sp("cosine_warm_restarts", base=0.05, t_0=6, t_mult=2, eta_min=0.0)],
        milestones=[4]), 50),
    ("sequential_poly_multistep",
     sp("sequential",
        schedules=[sp("polynomial", base=0.1, total_iters=10, power=2.0),
                   sp("multi_step", base=0.1, milestones=[3, 9], gamma=0.1)],
        milestones=[12]), 30),
    ("chained_constant_exp",
     sp("chained",
        schedules=[sp("constant_lr", base=0.1, factor=0.1, total_iters=4),
                   sp("exponential", base=0.1, gamma=0.9)]), 40),
    ("chained_linear_step_exp",
     sp("chained",
        schedules=[sp("linear", base=0.1, start_factor=0.5, end_factor=1.0, total_iters=10),
                   sp("step", base=0.1, step_size=5, gamma=0.5),
                   sp("exponential", base=0.1, gamma=0.98)]), 40),
    ("chained_warmup_cosine",
     sp("chained",
        schedules=[sp("linear", base=0.1, start_factor=0.01, end_factor=1.0, total_iters=8),
                   sp("cosine_annealing", base=0.1, t_max=40, eta_min=0.0)]), 40),
    ("chained_poly_multistep",
     sp("chained",
        schedules=[sp("polynomial", base=0.3, total_iters=20, power=2.0),
                   sp("multi_step", base=0.3, milestones=[3, 8], gamma=0.5)]), 30),
    ("warmup_cosine",
     sp("warmup_cosine", peak_lr=0.1, warmup_steps=10, total_steps=50, final_lr=0.001), 60),
    ("warmup_cosine_nowarm",
     sp("warmup_cosine", peak_lr=0.1, warmup_steps=0, total_steps=30, final_lr=0.0), 40),
    ("warmup_constant",
     sp("warmup_constant", lr=0.02, warmup_steps=8), 30),
]


# ------------------------------------------------------------ plateau cases
def run_plateau(name, args, initial_lrs, metrics):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in initial_lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, initial_lrs)])
    min_lr = args["min_lr"]
    sch = S.ReduceLROnPlateau(
        opt,
        mode=args["mode"],
        factor=args["factor"],
        patience=args["patience"],
        threshold=args["threshold"],
        threshold_mode=args["threshold_mode"],
        cooldown=args["cooldown"],
        min_lr=min_lr if len(min_lr) != 1 else min_lr[0],
        eps=args["eps"],
    )
    lrs = []
    bad = []
    for m in metrics:
        opt.step()
        sch.step(m)
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        bad.append(sch.num_bad_epochs)
    return {
        "name": name,
        "args": args,
        "initial_lrs": initial_lrs,
        "metrics": [fval(m) for m in metrics],
        "lrs": lrs,
        "num_bad_epochs": bad,
    }


def pa(**kw):
    d = dict(mode="min", factor=0.1, patience=10, threshold=1e-4,
             threshold_mode="rel", cooldown=0, min_lr=[0.0], eps=1e-8)
    d.update(kw)
    return d


nan = float("nan")
inf = float("inf")
PLATEAU = [
    ("plateau_min_rel", pa(patience=2, factor=0.5),
     [0.1], [1.0, 0.9, 0.95, 0.92, 0.91, 0.8, 0.85, 0.86, 0.87, 0.88, 0.79, 0.8, 0.81, 0.82, 0.83,
             0.84, 0.85, 0.7, 0.75, 0.76, 0.77, 0.78, 0.79, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86]),
    ("plateau_max_abs_cooldown", pa(mode="max", patience=1, factor=0.3, threshold=0.01,
                                    threshold_mode="abs", cooldown=2),
     [0.1, 0.01], [0.5, 0.6, 0.605, 0.61, 0.62, 0.615, 0.61, 0.6, 0.7, 0.69, 0.68, 0.67, 0.66,
                   0.65, 0.64, 0.71, 0.72, 0.719, 0.718, 0.717, 0.716, 0.715, 0.714, 0.713,
                   0.712, 0.711, 0.71, 0.709, 0.708, 0.707]),
    ("plateau_min_lr_eps", pa(patience=0, factor=0.5, min_lr=[0.01, 0.002], eps=1e-3),
     [0.1, 0.004], [1.0] * 30),
    ("plateau_nan_inf", pa(patience=1, factor=0.5),
     [0.2], [nan, 1.0, nan, nan, 0.5, inf, nan, 0.4, 0.41, 0.42, -inf, 0.0, 0.1, nan, 0.3,
             0.2, 0.1, 0.05, 0.04, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03]),
    ("plateau_max_rel_negative", pa(mode="max", patience=2, factor=0.2, threshold=0.1,
                                    threshold_mode="rel", cooldown=1),
     [1.0], [-1.0, -0.95, -0.8, -0.85, -0.9, -0.7, -0.72, -0.71, 0.1, 0.105, 0.12, 0.2, 0.21,
             0.22, 0.23, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1, 0.6, 0.7, 0.8, 0.9, 1.0, 0.95,
             0.96, 0.97]),
    ("plateau_min_abs_default", pa(patience=3, threshold=0.05, threshold_mode="abs"),
     [0.3, 0.03, 3e-5], [3.0 - 0.04 * i for i in range(30)]),
]


def main():
    cases = []
    for name, spec, steps in CASES + COMPOSITE:
        cases.append(run_case(name, spec, steps))
    for name, spec, steps in CYCLING:
        mom = spec["args"]["cycle_momentum"] is not None
        cases.append(run_case(name, spec, steps, momentum=mom))
    plateau = [run_plateau(*c) for c in PLATEAU]
    out = {
        "torch_version": torch.__version__,
        "generator": "tests/golden/gen_schedules.py",
        "note": "lrs[k] = optimizer lr after k scheduler.step() calls (k = 0: after construction)",
        "schedules": cases,
        "plateau": plateau,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {len(cases)} schedule cases and {len(plateau)} plateau cases to {OUT}")


if __name__ == "__main__":
    main()
