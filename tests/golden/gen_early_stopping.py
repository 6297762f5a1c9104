#!/usr/bin/env python3
"""Generate tests/golden/early_stopping.json from the real Keras EarlyStopping.

Needs `keras` (3.x) with any backend; torch's CPU build works:

    python3 -m venv --system-site-packages /tmp/kenv && /tmp/kenv/bin/pip install keras
    KERAS_BACKEND=torch /tmp/kenv/bin/python tests/golden/gen_early_stopping.py

Each case drives `keras.callbacks.EarlyStopping` the way `Model.fit` does:
`on_train_begin`, then `on_epoch_end(epoch, {monitor: value})` per epoch until
`model.stop_training` is set, then `on_train_end`. A stub model records when
the callback takes a weight snapshot (`get_weights`) and when it restores one
(`set_weights`), so the golden file holds, per epoch: improved (best changed),
snapshot, stop, wait, best, best_epoch; and at the end whether (and which
snapshot) was restored.

All values are dyadic rationals so Keras' float32 comparisons (ops.less /
ops.greater convert Python floats to floatx) agree with f64 ones. A NaN as the
*first* monitored value is excluded: Keras treats it as an improvement (there
is no best yet), the Rust port deliberately does not.
"""

import json
import math
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")
warnings.filterwarnings("ignore")

import keras  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "early_stopping.json")


class StubModel:
    def __init__(self):
        self.stop_training = False
        self.epoch = None
        self.snapshots = []  # epochs at which get_weights was called
        self.restored = None  # epoch of the snapshot restored

    def get_weights(self):
        self.snapshots.append(self.epoch)
        return {"epoch": self.epoch}

    def set_weights(self, w):
        self.restored = w["epoch"]


def fval(x):
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def run(name, cfg, values):
    cb = keras.callbacks.EarlyStopping(
        monitor=cfg["monitor"],
        min_delta=cfg["min_delta"],
        patience=cfg["patience"],
        mode=cfg["mode"],
        baseline=cfg["baseline"],
        restore_best_weights=cfg["restore_best_weights"],
        start_from_epoch=cfg["start_from_epoch"],
    )
    model = StubModel()
    cb.set_model(model)
    cb.on_train_begin()
    epochs = []
    for epoch, v in enumerate(values):
        model.epoch = epoch
        n_snap = len(model.snapshots)
        prev_best = cb.best
        cur = float(repr(v))  # a fresh object, so `is` tells whether best changed
        cb.on_epoch_end(epoch, {cfg["monitor"]: cur})
        epochs.append({
            "epoch": epoch,
            "value": fval(v),
            "improved": cb.best is cur and prev_best is not cur,
            "snapshot": len(model.snapshots) > n_snap,
            "stop": bool(model.stop_training),
            "wait": cb.wait,
            "best": fval(cb.best),
            "best_epoch": cb.best_epoch,
        })
        if model.stop_training:
            break
    cb.on_train_end()
    return {
        "name": name,
        "config": cfg,
        "values": [fval(v) for v in values],
        "epochs": epochs,
        "stopped_epoch": cb.stopped_epoch,
        "restored_epoch": model.restored,
    }


def cfg(**kw):
    d = dict(monitor="val_loss", mode="min", min_delta=0.0, patience=0, baseline=None,
             restore_best_weights=False, start_from_epoch=0)
    d.update(kw)
    return d


nan = float("nan")
CASES = [
    ("patience0", cfg(), [1.0, 0.5, 0.75, 0.25]),
    ("patience2", cfg(patience=2), [1.0, 0.5, 0.75, 0.625, 0.5, 0.25, 0.5, 0.5, 0.5, 0.5]),
    ("patience3_restore", cfg(patience=3, restore_best_weights=True),
     [1.0, 0.5, 0.75, 0.375, 0.5, 0.5, 0.5, 0.125]),
    ("no_stop_restore_at_end", cfg(patience=5, restore_best_weights=True),
     [1.0, 0.5, 0.75, 0.25, 0.375, 0.5]),
    ("min_delta_exact_not_enough", cfg(patience=1, min_delta=0.25),
     [1.0, 0.75, 0.5, 0.25, 0.125, 0.0]),
    ("min_delta_negative_abs", cfg(patience=1, min_delta=-0.25),
     [1.0, 0.5, 0.375, 0.25, 0.0]),
    ("max_mode", cfg(monitor="val_accuracy", mode="max", patience=2),
     [0.5, 0.625, 0.625, 0.75, 0.5, 0.5, 0.875]),
    ("max_min_delta", cfg(monitor="acc", mode="max", patience=1, min_delta=0.125),
     [0.25, 0.375, 0.5, 0.625, 0.75, 0.875]),
    ("baseline_never_beaten", cfg(patience=3, baseline=0.5), [1.0, 0.875, 0.75, 0.625, 0.5625, 0.5]),
    ("baseline_never_beaten_restore", cfg(patience=3, baseline=0.5, restore_best_weights=True),
     [1.0, 0.875, 0.9375, 0.625, 0.75, 0.5]),
    ("baseline_beaten_later", cfg(patience=2, baseline=0.5),
     [1.0, 0.75, 0.25, 0.5, 0.375, 0.3125, 0.25]),
    ("baseline_max", cfg(mode="max", monitor="auc", patience=2, baseline=0.75, restore_best_weights=True),
     [0.5, 0.625, 0.8125, 0.75, 0.6875, 0.875]),
    ("baseline_patience0", cfg(patience=0, baseline=0.5), [1.0, 0.75, 0.25]),
    ("start_from_epoch", cfg(patience=1, start_from_epoch=3),
     [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 3.0, 7.0]),
    ("start_from_epoch_restore", cfg(patience=2, start_from_epoch=2, restore_best_weights=True),
     [0.125, 0.25, 1.0, 1.5, 1.25, 0.5, 0.75, 0.875, 1.0]),
    ("nan_later", cfg(patience=2, restore_best_weights=True),
     [1.0, nan, 0.5, nan, nan, 0.25]),
    ("nan_then_recover", cfg(patience=3), [1.0, nan, nan, 0.5, nan, nan, nan, 0.25]),
    ("inf_values", cfg(patience=1), [float("inf"), 1.0, float("inf"), 1.0, 0.5]),
    ("equal_not_improvement", cfg(patience=2), [0.5, 0.5, 0.5, 0.5]),
    ("long_run", cfg(patience=4, min_delta=0.0625, restore_best_weights=True),
     [2.0 - 0.0625 * (i % 7) - 0.125 * (i // 7) for i in range(40)]),
]


def main():
    cases = [run(*c) for c in CASES]
    out = {
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "generator": "tests/golden/gen_early_stopping.py",
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
