"""Opens a checkpoint written by wgpu-optim with Python's safetensors and
checks the tensor names, shapes and metadata a PyTorch user would rely on.

    cargo run --example write_checkpoint -- /tmp/ckpt.safetensors
    pip install safetensors torch
    python3 tests/golden/check_checkpoint.py /tmp/ckpt.safetensors

CI does not run this (it needs Python); it was run by hand with
safetensors 0.8.0 and torch 2.15.0.
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
assert meta["format"] == "wgpu-optim-checkpoint" and meta["version"] == "1", meta
doc = json.loads(meta["wgpu_optim"])
assert doc["optimizer"] == "adam" and doc["step"] == 3, doc
assert doc["state_names"] == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
# After 3 steps with a constant gradient g, exp_avg = g * (1 - 0.9^3).
g = tensors["state.fc1.bias.exp_avg"]
assert abs(g[0].item() - (-1.0) * (1 - 0.9 ** 3)) < 1e-6, g
print("ok:", sorted(tensors))
