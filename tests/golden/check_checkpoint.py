"""Opens a checkpoint written by wgpu-optim with Python's safetensors and
checks the tensor names, shapes and metadata a PyTorch user would rely on.

    cargo run --example write_checkpoint -- /tmp/ckpt.safetensors
    pip install safetensors torch
    python3 tests/golden/check_checkpoint.py /tmp/ckpt.safetensors

CI does not run this (it needs Python); it was run by hand with
safetensors 0.8.0 and torch 2.15.0 on version 1 files (the version 2
checks — the metadata checksum, the per-group hyperparameters — have not
been run in Python yet).
"""
import json
import sys

from safetensors import safe_open
from safetensors.torch import load_file

path = sys.argv[1]
tensors = load_file(path)
expected = {
    "param.fc1.weight": (4, 3), "param.fc1.bias": (4,),
    "state.fc1.weight.exp_avg": (4, 3), "state.fc1.weight.exp_avg_sq": (4, 3),
    "state.fc1.weight.max_exp_avg_sq": (4, 3),
    "state.fc1.bias.exp_avg": (4,), "state.fc1.bias.exp_avg_sq": (4,),
    "state.fc1.bias.max_exp_avg_sq": (4,),
}
assert set(tensors) == set(expected), sorted(tensors)
for name, shape in expected.items():
    assert tuple(tensors[name].shape) == shape, (name, tensors[name].shape)
    assert str(tensors[name].dtype) == "torch.float32"
with safe_open(path, "pt") as f:
    meta = f.metadata()
assert meta["format"] == "wgpu-optim-checkpoint" and meta["version"] == "2", meta


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return h


# The document's checksum: FNV-1a 64 of its UTF-8 bytes, 16 hex digits.
assert meta["wgpu_optim_checksum"] == "%016x" % fnv1a(meta["wgpu_optim"].encode()), meta
doc = json.loads(meta["wgpu_optim"])
assert doc["optimizer"] == "adam" and doc["step"] == 3, doc
assert doc["groups"][0]["hyperparameters"]["beta1"] == 0.9, doc["groups"]
assert doc["state_names"] == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
# After 3 steps with a constant gradient g, exp_avg = g * (1 - 0.9^3).
g = tensors["state.fc1.bias.exp_avg"]
assert abs(g[0].item() - (-1.0) * (1 - 0.9 ** 3)) < 1e-6, g
print("ok:", sorted(tensors))
