#!/usr/bin/env python3
"""Generate golden optimizer trajectories for wgpu-optim, computed by PyTorch.

Usage (from the crate root):

    python3 tests/golden/gen_optim.py

Writes tests/golden/optim.json next to this script. Deterministic: each case
uses a torch.Generator seeded from a CRC32 of its name, so adding or reordering
cases does not change the data of the others.

All arithmetic is done in torch.float64 with the single-tensor (foreach=False)
implementations (torch's default dtype is set to float64 too, so that its
per-tensor scalar states such as NAdam's mu_product and ASGD's eta are f64). Every input value (initial params, grads) is exactly
representable in float32: it is drawn in float32 and only then widened to
float64, so an f64 reference and an f32 kernel can start from identical inputs.

L1 regularization is our extension, not part of PyTorch. It is emulated by
handing torch the gradient
    g + l1 * sign(p)   when maximize is False
    g - l1 * sign(p)   when maximize is True  (torch then negates it)
where sign() is taken of the parameter before the step and l1 is per group.
The JSON "grads" are the raw g, without the L1 term.

Optimizers outside torch.optim come from their reference implementations:
Lion from the `lion-pytorch` package (lion_pytorch.Lion, a torch optimizer:
it has no `maximize`, so the script negates the gradient itself), ADOPT from
optax (`optax.contrib.scale_by_adopt` on CPU in float64, chained with
`add_decayed_weights` for decoupled weight decay; L2 decay, L1 and maximize
are folded into the gradient it is given), LAMB from `torch-optimizer`
(torch_optimizer.Lamb, no `maximize` either), Schedule-Free AdamW and SGD
from `schedulefree` (AdamWScheduleFree / SGDScheduleFree, foreach=False,
train() before the first step; after the last step the case also records each
group's running lr_max / weight_sum and the params after eval()), Muon from torch.optim.Muon
with its Newton-Schulz iteration in float64 (torch casts it to bfloat16; the script puts a
`torch` whose `bfloat16` is float64 into torch.optim._muon's namespace, so torch's own code runs
exactly; it prints how far stock bf16 is from it), LARS from
optax (`optax.lars`,
float64 on CPU, one optax.lars per param group over that group's tensors;
L1 and maximize folded into the gradient), Adafactor from torch.optim.Adafactor
(foreach=False) with eps1 given explicitly as float32's machine epsilon 2**-23 (torch's
eps1=None would mean the param dtype's, float64's, here; the crate computes in f32). One
departure from stock torch for Adafactor: torch divides by numel**0.5, so an empty tensor is
given no grad (torch skips it: params unchanged, no state). Its states are row_var / col_var for tensors of 2 or more dims (factored over the
last two dims) and variance for the others; every tensor gets all three keys in "state",
with [] for a state it lacks (and for an empty tensor). Scalar per-tensor states (NAdam's
mu_product, ASGD's eta and mu) are not recorded: the crate computes them from
the step count.

Requirements: pip install torch lion-pytorch torch-optimizer schedulefree optax jax
"""

import json
import os
import warnings
import zlib

warnings.filterwarnings("ignore")  # e.g. "Failed to initialize NumPy" on numpy-free installs

import torch  # noqa: E402
import lion_pytorch  # noqa: E402
import torch_optimizer  # noqa: E402
import schedulefree  # noqa: E402

STEPS = 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim.json")

DEFAULT_SHAPES = [[5], [2, 3], [0], [7], [1]]
# Muon takes matrices only: wide, empty, a row, tall, square.
MUON_SHAPES = [[5, 7], [0, 3], [1, 4], [6, 2], [3, 3]]
# Adafactor: vectors, matrices, a 3-D tensor (a batch of 2 factored 3x5 slices), a one-element
# vector, a column matrix, an empty vector.
ADAFACTOR_SHAPES = [[5], [2, 3], [4, 7], [2, 3, 5], [1], [3, 1], [0]]

# PyTorch defaults for every optimizer (betas split into beta1/beta2), plus our "l1".
DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                nesterov=False, maximize=False),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                  amsgrad=False, maximize=False),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                    initial_accumulator_value=0.0, eps=1e-10, maximize=False),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                    centered=False, maximize=False),
    "adamax": dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                   maximize=False),
    "nadam": dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                  momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False),
    "radam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                  decoupled_weight_decay=False, maximize=False),
    "asgd": dict(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False),
    # torch's Rprop has no weight decay: it stays 0 here (the crate's extension).
    "rprop": dict(lr=1e-2, etaminus=0.5, etaplus=1.2, step_size_min=1e-6, step_size_max=50.0,
                  weight_decay=0.0, maximize=False),
    # lion-pytorch's defaults.
    "lion": dict(lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0, maximize=False),
    # The authors' defaults (optax's adopt takes lr without a default).
    "adopt": dict(lr=1e-3, beta1=0.9, beta2=0.9999, eps=1e-6, weight_decay=0.0,
                  decoupled_weight_decay=False, nesterov=False, clip=True, maximize=False),
    # torch-optimizer's Lamb defaults.
    "lamb": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0, clamp_value=10.0,
                 adam=False, debias=False, maximize=False),
    # optax.lars defaults (its learning_rate has none: the crate's default of 1).
    "lars": dict(lr=1.0, weight_decay=0.0, trust_coefficient=1e-3, eps=0.0, momentum=0.9,
                 trust_ratio_mask=1.0, nesterov=False, maximize=False),
    # schedulefree's defaults; lr_max and weight_sum are its running state in
    # each param group (recorded after the last step as "running"; the crate
    # starts lr_max at 0, which acts as schedulefree's -1 since every lr >= 0).
    "schedule_free_adamw": dict(lr=0.0025, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                warmup_steps=0.0, r=0.0, weight_lr_power=2.0, lr_max=0.0,
                                weight_sum=0.0, maximize=False),
    "schedule_free_sgd": dict(lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0.0, r=0.0,
                              weight_lr_power=2.0, lr_max=0.0, weight_sum=0.0, maximize=False),
    # torch.optim.Muon's defaults (ns_coefficients split into ns_a / ns_b / ns_c; adjust_lr_fn
    # None is "original").
    "muon": dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_a=3.4445,
                 ns_b=-4.7750, ns_c=2.0315, eps=1e-7, ns_steps=5, adjust_lr_fn="original",
                 maximize=False),
    # torch.optim.Adafactor's defaults (eps split into eps1 / eps2), except eps1: torch's None
    # is the param dtype's machine epsilon, float32's here (the crate's dtype), not float64's.
    "adafactor": dict(lr=1e-2, beta2_decay=-0.8, eps1=2.0**-23, eps2=1e-3, d=1.0,
                      weight_decay=0.0, maximize=False),
}

TORCH_CLASS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "asgd": torch.optim.ASGD,
    "rprop": torch.optim.Rprop,
    "lion": lion_pytorch.Lion,
    "lamb": torch_optimizer.Lamb,
    "schedule_free_adamw": schedulefree.AdamWScheduleFree,
    "schedule_free_sgd": schedulefree.SGDScheduleFree,
    "muon": torch.optim.Muon,
    "adafactor": torch.optim.Adafactor,
}

SCHEDULE_FREE = ("schedule_free_adamw", "schedule_free_sgd")


def case(name, optimizer, shapes=None, grad_scale=1.0, groups=None, **overrides):
    cfg = dict(DEFAULTS[optimizer])
    cfg["l1"] = 0.0
    for k, v in overrides.items():
        if k not in cfg:
            raise KeyError(f"{name}: unknown config key {k!r} for {optimizer}")
        cfg[k] = v
    # Numbers as floats, flags as bools, names as strings.
    cfg = {k: (v if isinstance(v, (bool, str)) else float(v)) for k, v in cfg.items()}
    if groups is not None:
        # lr, weight_decay and l1 always; any other numeric hyperparameter of
        # the optimizer (betas as beta1 / beta2, eps, momentum, ...) when given.
        groups = [
            dict(
                {
                    "params": list(g["params"]),
                    "lr": float(g.get("lr", cfg["lr"])),
                    "weight_decay": float(g.get("weight_decay", cfg["weight_decay"])),
                    "l1": float(g.get("l1", cfg["l1"])),
                },
                **{k: float(v) for k, v in g.items()
                   if k not in ("params", "lr", "weight_decay", "l1")},
            )
            for g in groups
        ]
        for g in groups:
            for k in g:
                if k != "params" and k not in cfg:
                    raise KeyError(f"{name}: unknown group key {k!r} for {optimizer}")
    return dict(name=name, optimizer=optimizer, config=cfg,
                shapes=shapes if shapes is not None else DEFAULT_SHAPES,
                grad_scale=grad_scale, groups=groups)


CASES = [
    # ---- SGD ----
    case("sgd_plain", "sgd", lr=0.1),
    case("sgd_momentum", "sgd", lr=0.1, momentum=0.9),
    case("sgd_momentum_dampening", "sgd", lr=0.1, momentum=0.9, dampening=0.5),
    case("sgd_nesterov", "sgd", shapes=[[3], [4, 2], [0], [11]], lr=0.1, momentum=0.9,
         nesterov=True),
    case("sgd_momentum_wd", "sgd", lr=0.1, momentum=0.9, weight_decay=0.01),
    case("sgd_nesterov_wd", "sgd", lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True),
    case("sgd_maximize_momentum", "sgd", lr=0.1, momentum=0.9, maximize=True),
    case("sgd_l1", "sgd", lr=0.1, l1=0.01),
    case("sgd_l1_momentum_maximize", "sgd", shapes=[[9], [0], [3, 3, 1]], lr=0.05,
         momentum=0.5, maximize=True, l1=0.02),
    case("sgd_default_lr", "sgd", shapes=[[40], [0], [1]]),
    # ---- Adam ----
    case("adam_default", "adam"),
    case("adam_wd", "adam", lr=0.01, weight_decay=0.1),
    case("adam_amsgrad", "adam", lr=0.01, amsgrad=True),
    case("adam_amsgrad_maximize", "adam", lr=0.01, amsgrad=True, maximize=True),
    case("adam_eps_tiny_grads", "adam", grad_scale=1e-3, lr=0.01, eps=1e-3),
    case("adam_tiny_grads_default_eps", "adam", grad_scale=1e-3, lr=0.01),
    case("adam_l1", "adam", lr=0.01, l1=0.01),
    case("adam_l1_wd_maximize", "adam", shapes=[[3], [0], [5, 3]], lr=0.01,
         beta1=0.8, beta2=0.95, weight_decay=0.05, maximize=True, l1=0.01),
    case("adam_amsgrad_wd_big_grads", "adam", grad_scale=10.0, lr=0.05,
         weight_decay=0.1, amsgrad=True),
    # ---- AdamW ----
    case("adamw_default", "adamw"),
    case("adamw_wd_amsgrad", "adamw", lr=0.01, weight_decay=0.1, amsgrad=True),
    case("adamw_maximize", "adamw", lr=0.01, maximize=True),
    case("adamw_l1", "adamw", shapes=[[13], [0], [2, 2]], lr=0.01, weight_decay=0.05,
         l1=0.01),
    # ---- Adagrad ----
    case("adagrad_default", "adagrad"),
    case("adagrad_lr_decay_init_acc", "adagrad", lr=0.1, lr_decay=0.1,
         initial_accumulator_value=0.5),
    case("adagrad_wd", "adagrad", lr=0.1, weight_decay=0.1),
    case("adagrad_maximize", "adagrad", lr=0.1, maximize=True),
    case("adagrad_l1", "adagrad", lr=0.1, l1=0.01),
    case("adagrad_eps_tiny_grads", "adagrad", shapes=[[7], [0], [3, 5]], grad_scale=1e-3,
         lr=0.05, eps=1e-4),
    # ---- Adadelta ----
    case("adadelta_default", "adadelta"),
    case("adadelta_rho_wd", "adadelta", rho=0.5, weight_decay=0.1),
    case("adadelta_maximize", "adadelta", lr=0.5, maximize=True),
    case("adadelta_l1", "adadelta", shapes=[[6, 1], [0], [9]], lr=0.5, l1=0.01),
    # ---- RMSprop ----
    case("rmsprop_default", "rmsprop"),
    case("rmsprop_centered", "rmsprop", centered=True),
    case("rmsprop_momentum", "rmsprop", momentum=0.9),
    case("rmsprop_centered_momentum_wd", "rmsprop", alpha=0.9, centered=True,
         momentum=0.9, weight_decay=0.1),
    case("rmsprop_maximize", "rmsprop", lr=0.01, momentum=0.5, maximize=True),
    case("rmsprop_l1", "rmsprop", shapes=[[5], [0], [4, 4]], lr=0.01, l1=0.01),
    # ---- Param groups ----
    case("adam_groups", "adam", shapes=[[5], [2, 3], [0], [7], [1]], lr=0.01,
         groups=[
             {"params": [0, 2, 4], "lr": 0.01, "weight_decay": 0.1, "l1": 0.0},
             {"params": [1, 3], "lr": 0.001, "weight_decay": 0.0, "l1": 0.001},
         ]),
    case("sgd_momentum_groups", "sgd", shapes=[[5], [2, 3], [0], [7], [1], [3]], lr=0.1,
         momentum=0.9, groups=[
             {"params": [0, 5], "lr": 0.1, "weight_decay": 0.0, "l1": 0.0},
             {"params": [1, 2], "lr": 0.0, "weight_decay": 0.1, "l1": 0.01},
             {"params": [3, 4], "lr": 0.05, "weight_decay": 0.01, "l1": 0.0},
         ]),
    # ---- Adamax ----
    case("adamax_default", "adamax"),
    case("adamax_wd_maximize", "adamax", lr=0.01, weight_decay=0.1, maximize=True),
    case("adamax_betas_eps_l1", "adamax", shapes=[[9], [0], [3, 4]], lr=0.01, beta1=0.5,
         beta2=0.9, eps=1e-3, l1=0.01),
    # ---- Every hyperparameter per param group ----
    case("adam_group_betas_eps", "adam", lr=0.01, groups=[
        {"params": [0, 2, 4]},
        {"params": [1, 3], "lr": 0.02, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3},
    ]),
    case("sgd_group_momentum_dampening", "sgd", lr=0.1, momentum=0.9, groups=[
        {"params": [0, 1]},
        {"params": [2, 3, 4], "momentum": 0.5, "dampening": 0.25},
    ]),
    case("rmsprop_group_alpha_eps", "rmsprop", momentum=0.5, groups=[
        {"params": [0, 1, 2]},
        {"params": [3, 4], "alpha": 0.8, "eps": 1e-4, "momentum": 0.9},
    ]),
    case("adamax_group_betas", "adamax", lr=0.01, groups=[
        {"params": [0, 3]},
        {"params": [1, 2, 4], "beta1": 0.7, "beta2": 0.99, "weight_decay": 0.05},
    ]),
    # ---- NAdam ----
    case("nadam_default", "nadam"),
    case("nadam_wd", "nadam", lr=0.01, weight_decay=0.1),
    case("nadam_decoupled_wd", "nadam", lr=0.01, weight_decay=0.1,
         decoupled_weight_decay=True),
    case("nadam_momentum_decay_maximize_l1", "nadam", shapes=[[9], [0], [3, 4]], lr=0.01,
         beta1=0.6, beta2=0.9, momentum_decay=0.05, maximize=True, l1=0.01),
    case("nadam_group_momentum_decay", "nadam", lr=0.01, groups=[
        {"params": [0, 2, 4]},
        {"params": [1, 3], "momentum_decay": 0.02, "beta1": 0.8, "eps": 1e-4},
    ]),
    # ---- RAdam (rho_t > 5 from step 6 on: 8 steps cross the switch) ----
    case("radam_default", "radam"),
    case("radam_wd", "radam", lr=0.01, weight_decay=0.1),
    case("radam_decoupled_maximize", "radam", lr=0.01, weight_decay=0.1,
         decoupled_weight_decay=True, maximize=True),
    case("radam_betas_l1", "radam", shapes=[[9], [0], [3, 4]], lr=0.01, beta1=0.5, beta2=0.9,
         eps=1e-3, l1=0.01),
    # ---- ASGD (t0 = 3: averaging starts within the 8 steps) ----
    case("asgd_default", "asgd"),
    case("asgd_t0_lambd_alpha", "asgd", lr=0.05, lambd=0.01, alpha=0.5, t0=3.0),
    case("asgd_wd_maximize_l1", "asgd", shapes=[[7], [0], [3, 5]], lr=0.05, t0=2.0,
         weight_decay=0.1, maximize=True, l1=0.01),
    case("asgd_group_lambd_t0", "asgd", lr=0.05, t0=5.0, groups=[
        {"params": [0, 3]},
        {"params": [1, 2, 4], "lambd": 0.05, "alpha": 0.9, "t0": 1.0},
    ]),
    # ---- Rprop ----
    case("rprop_default", "rprop"),
    case("rprop_etas_step_sizes", "rprop", lr=0.01, etaminus=0.3, etaplus=1.5,
         step_size_min=5e-3, step_size_max=0.015),
    case("rprop_maximize_l1", "rprop", shapes=[[9], [0], [3, 4]], lr=0.05, maximize=True,
         l1=0.01),
    # ---- Lion (lion-pytorch) ----
    case("lion_default", "lion"),
    case("lion_wd", "lion", lr=0.01, weight_decay=0.1),
    case("lion_betas_maximize_l1", "lion", shapes=[[9], [0], [3, 4]], lr=0.01, beta1=0.5,
         beta2=0.9, maximize=True, l1=0.01),
    case("lion_group_betas", "lion", lr=0.01, groups=[
        {"params": [0, 2, 4]},
        {"params": [1, 3], "lr": 0.002, "beta1": 0.7, "beta2": 0.95, "weight_decay": 0.2},
    ]),
    # ---- ADOPT (optax) ----
    case("adopt_default", "adopt"),
    case("adopt_nesterov", "adopt", lr=0.01, nesterov=True),
    case("adopt_noclip_eps", "adopt", lr=0.01, clip=False, eps=1e-3),
    case("adopt_l2_betas", "adopt", lr=0.01, beta1=0.5, beta2=0.9, weight_decay=0.1),
    # ---- Muon (torch.optim.Muon, its Newton-Schulz in float64) ----
    case("muon_default", "muon", shapes=MUON_SHAPES),
    case("muon_lr_wd", "muon", shapes=MUON_SHAPES, lr=0.02, weight_decay=0.05),
    case("muon_plain_match_rms", "muon", shapes=MUON_SHAPES, lr=0.02, momentum=0.9,
         nesterov=False, adjust_lr_fn="match_rms_adamw"),
    case("muon_spectral_steps_maximize_l1", "muon", shapes=MUON_SHAPES, lr=0.02,
         adjust_lr_fn="spectral_unclamped", ns_steps=3, eps=1e-3, maximize=True, l1=0.01),
    case("muon_groups", "muon", shapes=MUON_SHAPES, lr=0.02, groups=[
        {"params": [0, 2, 4]},
        {"params": [1, 3], "lr": 0.05, "momentum": 0.8, "weight_decay": 0.0, "eps": 1e-4},
    ]),
    # ---- LAMB (torch-optimizer) ----
    case("lamb_default", "lamb"),
    case("lamb_wd_clamp", "lamb", lr=0.01, weight_decay=0.1, clamp_value=0.5),
    case("lamb_debias_maximize_l1", "lamb", shapes=[[9], [0], [3, 4]], lr=0.01, debias=True,
         maximize=True, l1=0.01),
    case("lamb_adam_mode", "lamb", lr=0.01, weight_decay=0.01, adam=True),
    case("lamb_groups", "lamb", lr=0.01, weight_decay=0.05, groups=[
        dict(params=[0, 1], lr=0.02, weight_decay=0.0, beta1=0.8, eps=1e-4),
        dict(params=[2, 3, 4], l1=0.01),
    ]),
    # ---- LARS (optax) ----
    case("lars_default", "lars"),
    case("lars_wd_nesterov", "lars", lr=2.0, weight_decay=0.01, nesterov=True, momentum=0.8),
    case("lars_eps_tc_maximize_l1", "lars", shapes=[[9], [0], [3, 4]], lr=0.5,
         trust_coefficient=0.02, eps=1e-3, maximize=True, l1=0.01),
    case("lars_groups_mask", "lars", lr=2.0, weight_decay=0.01, groups=[
        dict(params=[0, 1], weight_decay=0.0, trust_ratio_mask=0.0, lr=0.01),
        dict(params=[2, 3, 4], lr=0.5, momentum=0.5, trust_coefficient=0.01),
    ]),
    # ---- Schedule-Free AdamW and SGD (schedulefree) ----
    case("schedule_free_adamw_default", "schedule_free_adamw"),
    case("schedule_free_adamw_warmup_wd", "schedule_free_adamw", lr=0.01, warmup_steps=5,
         weight_decay=0.1, beta1=0.8),
    case("schedule_free_adamw_r_power_maximize_l1", "schedule_free_adamw",
         shapes=[[9], [0], [3, 4]], lr=0.01, r=0.5, weight_lr_power=1.0, eps=1e-4,
         maximize=True, l1=0.01),
    case("schedule_free_adamw_groups", "schedule_free_adamw", lr=0.01, warmup_steps=3, groups=[
        dict(params=[0, 1], lr=0.02, weight_decay=0.05, beta1=0.5, beta2=0.99, warmup_steps=6),
        dict(params=[2, 3], lr=0.0),
        dict(params=[4], l1=0.01, r=1.0),
    ]),
    case("schedule_free_sgd_default", "schedule_free_sgd", lr=0.1),
    case("schedule_free_sgd_warmup_wd_maximize_l1", "schedule_free_sgd",
         shapes=[[9], [0], [3, 4]], lr=0.05, warmup_steps=4, weight_decay=0.01, momentum=0.7,
         maximize=True, l1=0.01),
    case("schedule_free_sgd_groups", "schedule_free_sgd", lr=0.1, groups=[
        dict(params=[0, 1, 2], lr=0.05, momentum=0.5, weight_lr_power=0.0),
        dict(params=[3, 4], r=2.0, warmup_steps=3),
    ]),
    case("adopt_decoupled_maximize_l1", "adopt", shapes=[[9], [0], [3, 4]], lr=0.01,
         weight_decay=0.1, decoupled_weight_decay=True, maximize=True, l1=0.01),
    # ---- Adafactor (torch.optim.Adafactor) ----
    case("adafactor_default", "adafactor", shapes=ADAFACTOR_SHAPES),
    case("adafactor_lr_wd", "adafactor", shapes=ADAFACTOR_SHAPES, lr=0.05, weight_decay=0.1),
    case("adafactor_decay_eps_d_maximize_l1", "adafactor", shapes=ADAFACTOR_SHAPES,
         beta2_decay=-0.5, eps2=1e-2, d=1.5, maximize=True, l1=0.01),
    case("adafactor_groups", "adafactor", shapes=ADAFACTOR_SHAPES, lr=0.02, groups=[
        {"params": [0, 2, 4], "lr": 0.1, "weight_decay": 0.05, "d": 2.0},
        {"params": [1, 3, 5, 6], "beta2_decay": -0.6, "eps2": 0.0},
    ]),
]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def f32_exact(t32):
    """float32 tensor -> float64 tensor (exact widening)."""
    assert t32.dtype == torch.float32
    return t32.to(torch.float64)


def make_inputs(c):
    g = torch.Generator().manual_seed(zlib.crc32(c["name"].encode()))
    shapes = c["shapes"]
    scale = torch.tensor(c["grad_scale"], dtype=torch.float32)

    params0 = []
    for ti, s in enumerate(shapes):
        p = torch.randn(numel(s), generator=g, dtype=torch.float32)
        if p.numel() > 0:
            p[0] = 0.0  # param stuck at 0 (its grad is always 0 too, below)
        if p.numel() > 3:
            p[3] = 0.0  # param at 0 with nonzero grads: sign(0) on the first step
        params0.append(f32_exact(p))

    grads = []
    for step in range(STEPS):
        gs = []
        for ti, s in enumerate(shapes):
            x = torch.randn(numel(s), generator=g, dtype=torch.float32) * scale
            if x.numel() > 0:
                x[0] = 0.0  # always-zero grad (with param 0: must stay exactly 0)
            if x.numel() > 2 and step % 2 == 1:
                x[2] = 0.0  # intermittent zero grad
            if x.numel() > 4 and step == 5:
                x[4] = 0.0
            gs.append(f32_exact(x))
        grads.append(gs)
    return params0, grads


# Reference optimizers without `maximize`: run_case negates the gradient.
NO_MAXIMIZE = ("lion", "lamb", "schedule_free_adamw", "schedule_free_sgd", "muon")

SPLIT = ("l1", "beta1", "beta2", "etaminus", "etaplus", "step_size_min", "step_size_max",
         "ns_a", "ns_b", "ns_c", "eps1", "eps2")


def torch_kwargs(opt, cfg):
    kw = {k: v for k, v in cfg.items() if k not in SPLIT}
    if "beta1" in cfg:
        kw["betas"] = (cfg["beta1"], cfg["beta2"])
    if opt == "rprop":
        kw["etas"] = (cfg["etaminus"], cfg["etaplus"])
        kw["step_sizes"] = (cfg["step_size_min"], cfg["step_size_max"])
        assert kw.pop("weight_decay") == 0.0, "torch's Rprop has no weight decay"
    if opt in NO_MAXIMIZE:
        del kw["maximize"]  # negated by run_case
    if opt in SCHEDULE_FREE:
        del kw["lr_max"], kw["weight_sum"]  # running state, not arguments
        kw["warmup_steps"] = int(kw["warmup_steps"])
    if opt == "muon":
        kw["ns_coefficients"] = (cfg["ns_a"], cfg["ns_b"], cfg["ns_c"])
        kw["ns_steps"] = int(kw["ns_steps"])
    if opt == "adafactor":
        kw["eps"] = (cfg["eps1"], cfg["eps2"])
    if opt not in ("lion", "lamb", "muon"):  # the others have a foreach switch
        kw["foreach"] = False
    return kw


class _Float64Torch:
    """The `torch` module with `bfloat16` meaning float64, for torch.optim._muon: its
    Newton-Schulz iteration casts to bfloat16; with this in its namespace the same code runs
    in float64 (the goldens are the exact iteration; the crate runs it in f32)."""

    bfloat16 = torch.float64

    def __getattr__(self, name):
        return getattr(torch, name)


def muon_in_float64():
    import torch.optim._muon as muon_module
    muon_module.torch = _Float64Torch()


def run_case(c):
    opt_name, cfg, shapes = c["optimizer"], c["config"], c["shapes"]
    params0, grads = make_inputs(c)
    params = [p.clone().reshape(s).requires_grad_(False) for p, s in zip(params0, shapes)]

    groups = c["groups"]
    if groups is None:
        eff_groups = [{"params": list(range(len(shapes))), "lr": cfg["lr"],
                       "weight_decay": cfg["weight_decay"], "l1": cfg["l1"]}]
        torch_groups = params
    else:
        covered = sorted(i for grp in groups for i in grp["params"])
        assert covered == list(range(len(shapes))), f"{c['name']}: groups must partition tensors"
        eff_groups = groups
        torch_groups = []
        for grp in groups:
            tg = {"params": [params[i] for i in grp["params"]], "lr": grp["lr"],
                  "weight_decay": grp["weight_decay"]}
            for k, v in grp.items():
                if k not in ("params", "lr", "weight_decay", "l1", "beta1", "beta2", "eps1",
                             "eps2"):
                    tg[k] = v
            if "beta1" in grp or "beta2" in grp:
                tg["betas"] = (grp.get("beta1", cfg["beta1"]), grp.get("beta2", cfg["beta2"]))
            if "eps1" in grp or "eps2" in grp:
                tg["eps"] = (grp.get("eps1", cfg["eps1"]), grp.get("eps2", cfg["eps2"]))
            torch_groups.append(tg)

    opt = TORCH_CLASS[opt_name](torch_groups, **torch_kwargs(opt_name, cfg))
    if opt_name in SCHEDULE_FREE:
        opt.train()

    l1_of = {}
    for grp in eff_groups:
        for i in grp["params"]:
            l1_of[i] = grp["l1"]

    maximize = cfg["maximize"]
    traj = []
    for step in range(STEPS):
        for i, p in enumerate(params):
            gi = grads[step][i].reshape(shapes[i]).clone()
            l1 = l1_of[i]
            if opt_name in NO_MAXIMIZE and maximize:
                gi = -gi
            if l1 != 0.0:
                sgn = torch.sign(p.detach())
                gi = gi - l1 * sgn if maximize and opt_name not in NO_MAXIMIZE else gi + l1 * sgn
            # torch's Adafactor divides by numel**0.5: an empty tensor gets no grad (skipped).
            p.grad = gi if opt_name != "adafactor" or gi.numel() > 0 else None
        opt.step()
        traj.append([p.detach().reshape(-1).tolist() for p in params])

    # State after the last step, per tensor, in tensor order. Omit "step" and
    # the per-tensor scalars (0-dim tensors: mu_product, eta, mu).
    if opt_name == "adafactor":
        state = adafactor_state(c, opt, params)
    else:
        keys = None
        for p in params:
            st = opt.state[p]
            k = sorted(kk for kk, v in st.items()
                       if kk != "step" and isinstance(v, torch.Tensor) and v.dim() > 0)
            if keys is None:
                keys = k
            assert keys == k, f"{c['name']}: inconsistent state keys {keys} vs {k}"
        state = {k: [opt.state[p][k].detach().reshape(-1).tolist() for p in params]
                 for k in keys}

    if groups is not None:
        for grp in groups:
            if grp["lr"] == 0.0:
                for i in grp["params"]:
                    assert traj[-1][i] == params0[i].tolist(), \
                        f"{c['name']}: lr=0 group changed"

    out = record(c, params0, grads, traj, state)
    if opt_name in SCHEDULE_FREE:
        # The running state of each group, then the weights eval() gives.
        out["running"] = [{"lr_max": g["lr_max"], "weight_sum": g["weight_sum"]}
                          for g in opt.param_groups]
        opt.eval()
        out["params_eval"] = [p.detach().reshape(-1).tolist() for p in params]
    return out


def adafactor_state(c, opt, params):
    """Adafactor's row_var / col_var (tensors of 2 or more dims) and variance (the others),
    each recorded for every tensor: [] for a tensor without it (and for an empty tensor,
    which has no state since it gets no grad)."""
    keys = ("col_var", "row_var", "variance")
    for p, s in zip(params, c["shapes"]):
        have = sorted(k for k in opt.state[p] if k != "step")
        want = [] if numel(s) == 0 else list(keys[:2]) if len(s) > 1 else [keys[2]]
        assert have == want, f"{c['name']}: state {have} for shape {s}"
    return {k: [opt.state[p][k].detach().reshape(-1).tolist() if k in opt.state[p] else []
                for p in params]
            for k in keys}


def record(c, params0, grads, traj, state):
    """One case of optim.json: its inputs, the trajectory and the final state."""
    out = {"name": c["name"], "optimizer": c["optimizer"], "config": c["config"],
           "shapes": c["shapes"]}
    if c["groups"] is not None:
        out["groups"] = c["groups"]
    out["params0"] = [p.tolist() for p in params0]
    out["grads"] = [[g.tolist() for g in gs] for gs in grads]
    out["params"] = traj
    out["state"] = state
    return out


def run_optax_adopt(c):
    """ADOPT by optax in float64 on CPU, on the inputs run_case would use."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax
    from optax.contrib import scale_by_adopt

    cfg, shapes = c["config"], c["shapes"]
    assert c["groups"] is None, "optax has no param groups"
    params0, grads = make_inputs(c)
    chain = [scale_by_adopt(b1=cfg["beta1"], b2=cfg["beta2"], eps=cfg["eps"],
                            nesterov=cfg["nesterov"], use_clipping=cfg["clip"])]
    decoupled = cfg["decoupled_weight_decay"]
    if decoupled and cfg["weight_decay"] != 0.0:
        chain.append(optax.add_decayed_weights(cfg["weight_decay"]))
    chain.append(optax.scale_by_learning_rate(cfg["lr"]))
    tx = optax.chain(*chain)
    params = [jnp.asarray(p.tolist(), dtype=jnp.float64) for p in params0]
    state = tx.init(params)
    traj = []
    for step in range(STEPS):
        gs = []
        for i, p in enumerate(params):
            g = jnp.asarray(grads[step][i].tolist(), dtype=jnp.float64)
            if cfg["maximize"]:
                g = -g
            if not decoupled:
                g = g + cfg["weight_decay"] * p
            g = g + cfg["l1"] * jnp.sign(p)
            gs.append(g)
        updates, state = tx.update(gs, state, params)
        params = optax.apply_updates(params, updates)
        traj.append([[float(x) for x in p] for p in params])
    adopt_state = state[0]
    return record(c, params0, grads, traj, {
        "exp_avg": [[float(x) for x in m] for m in adopt_state.mu],
        "exp_avg_sq": [[float(x) for x in v] for v in adopt_state.nu],
    })


def run_optax_lars(c):
    """LARS by optax (optax.lars) in float64 on CPU, on the inputs run_case
    would use; each param group is its own optax.lars over its tensors (LARS
    has no cross-tensor term, so that is what per-group hyperparameters mean)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    cfg, shapes = c["config"], c["shapes"]
    params0, grads = make_inputs(c)
    groups = c["groups"] or [{"params": list(range(len(shapes))), "lr": cfg["lr"],
                              "weight_decay": cfg["weight_decay"], "l1": cfg["l1"]}]
    params = [jnp.asarray(p.tolist(), dtype=jnp.float64) for p in params0]
    runs = []
    for grp in groups:
        h = dict(cfg, **{k: v for k, v in grp.items() if k != "params"})
        tx = optax.lars(learning_rate=h["lr"], weight_decay=h["weight_decay"],
                        trust_coefficient=h["trust_coefficient"], eps=h["eps"],
                        trust_ratio_mask=bool(h["trust_ratio_mask"]), momentum=h["momentum"],
                        nesterov=cfg["nesterov"])
        idx = grp["params"]
        runs.append((tx, idx, h, tx.init([params[i] for i in idx])))
    traj = []
    for step in range(STEPS):
        for r, (tx, idx, h, st) in enumerate(runs):
            gs = []
            for i in idx:
                g = jnp.asarray(grads[step][i].tolist(), dtype=jnp.float64)
                if cfg["maximize"]:
                    g = -g
                gs.append(g + h["l1"] * jnp.sign(params[i]))
            mine = [params[i] for i in idx]
            updates, st = tx.update(gs, st, mine)
            for i, p in zip(idx, optax.apply_updates(mine, updates)):
                params[i] = p
            runs[r] = (tx, idx, h, st)
        traj.append([[float(x) for x in p] for p in params])
    trace = [None] * len(shapes)
    for tx, idx, h, st in runs:
        (ts,) = [s for s in st if isinstance(s, optax.TraceState)]
        for i, t in zip(idx, ts.trace):
            trace[i] = [float(x) for x in t]
    return record(c, params0, grads, traj, {"trace": trace})


def bf16_distance(c, exact):
    """The largest difference of stock torch.optim.Muon's first update (Newton-Schulz in
    bfloat16) from the float64 one, over the update's largest entry: printed, not recorded."""
    import torch.optim._muon as muon_module
    saved = muon_module.torch
    muon_module.torch = torch
    try:
        stock = run_case(c)
    finally:
        muon_module.torch = saved
    worst = 0.0
    for k, p0 in enumerate(exact["params0"]):
        du = [a - b for a, b in zip(exact["params"][0][k], p0)]
        ds = [a - b for a, b in zip(stock["params"][0][k], p0)]
        scale = max((abs(x) for x in du), default=0.0)
        if scale > 0.0:
            worst = max(worst, max(abs(a - b) for a, b in zip(du, ds)) / scale)
    print(f"{c['name']}: torch's bf16 first update differs from float64 by {worst:.2e} "
          "of its largest entry")


def run(c):
    if c["optimizer"] == "muon":
        out = run_case(c)
        bf16_distance(c, out)
        return out
    if c["optimizer"] == "adopt":
        return run_optax_adopt(c)
    if c["optimizer"] == "lars":
        return run_optax_lars(c)
    return run_case(c)


def main():
    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float64)
    muon_in_float64()
    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names), "duplicate case names"
    for c in CASES:
        assert all(numel(s) <= 40 for s in c["shapes"]), c["name"]
    doc = {
        "torch_version": torch.__version__,
        "generated_by": "tests/golden/gen_optim.py",
        "steps": STEPS,
        "cases": [run(c) for c in CASES],
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(doc['cases'])} cases, torch {torch.__version__}, "
          f"{os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
