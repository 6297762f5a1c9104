"""Opens a checkpoint written by wgpu-optim with Python's safetensors and
checks the tensor names, shapes and metadata a PyTorch user would rely on.

    cargo run --example write_checkpoint -- /tmp/ckpt.safetensors [f32|bf16|8bit]
    pip install safetensors torch
    python3 tests/golden/check_checkpoint.py /tmp/ckpt.safetensors [f32|bf16|8bit]

CI does not run this (it needs Python); it was run by hand with
safetensors 0.8.0 and torch 2.15.0 on version 1 files, and on version 2
files with f32, bf16 and 8-bit states (safetensors 0.8.0, torch 2.15.0).
"""
import json
import sys

from safetensors import safe_open
from safetensors.torch import load_file

path = sys.argv[1]
state_dtype = sys.argv[2] if len(sys.argv) > 2 else "f32"
torch_dtype = {"f32": "torch.float32", "bf16": "torch.bfloat16", "8bit": "torch.uint8"}[state_dtype]
tensors = load_file(path)
expected = {"param.fc1.weight": ((4, 3), "torch.float32"), "param.fc1.bias": ((4,), "torch.float32")}
for t, shape in [("fc1.weight", (4, 3)), ("fc1.bias", (4,))]:
    for s in ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]:
        expected["state.%s.%s" % (t, s)] = (shape, torch_dtype)
        if state_dtype == "8bit":
            # one f32 absmax per block of 256 elements
            expected["absmax.%s.%s" % (t, s)] = ((1,), "torch.float32")
assert set(tensors) == set(expected), sorted(tensors)
for name, (shape, dtype) in expected.items():
    assert tuple(tensors[name].shape) == shape, (name, tensors[name].shape)
    assert str(tensors[name].dtype) == dtype, (name, tensors[name].dtype)
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
want = (-1.0) * (1 - 0.9 ** 3)
g = tensors["state.fc1.bias.exp_avg"]
if state_dtype == "8bit":
    # four equal values: absmax |want|, each the signed map's entry 0 (-1.0)
    assert g.tolist() == [0, 0, 0, 0], g
    assert abs(tensors["absmax.fc1.bias.exp_avg"][0].item() - abs(want)) < 1e-6
else:
    assert abs(g[0].float().item() - want) < (2e-3 if state_dtype == "bf16" else 1e-6), g
print("ok:", sorted(tensors))
