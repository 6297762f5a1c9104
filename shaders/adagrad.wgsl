// adagrad.wgsl — fused Adagrad step over many tensors in one dispatch.
//
// Mirrors torch.optim.Adagrad `_single_tensor_adagrad` (torch/optim/adagrad.py):
//   g = grad * grad_scale; if MAXIMIZE { g = -g }
//   g = g + weight_decay * p + l1 * sign(p)
//   clr = lr / (1 + (t - 1) * lr_decay)          (host, f64)
//   sum = sum + g * g
//   p = p - clr * g / (sqrt(sum) + eps)
// The accumulator `sum` starts at initial_accumulator_value (filled by the host).
//
// Bindings (group 0):
//   0 uniform              groups: array<AdagradGroup, 256>
//   1 storage, read        blocks: array<Block>
//   2 storage, read_write  param
//   3 storage, read        grad
//   4 storage, read_write  sum
// Uniform layout: AdagradGroup is 8 x 4-byte scalars = 32 bytes (Rust: optim::adagrad::AdagradGroup).
// Dispatch and guard rule: as adam.wgsl.

override MAXIMIZE: bool = false;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

struct Block {
    start: u32,
    len: u32,
    group: u32,
    _pad: u32,
}

struct AdagradGroup {
    clr: f32,
    weight_decay: f32,
    l1: f32,
    eps: f32,
    grad_scale: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> groups: array<AdagradGroup, 256>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> sum: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.x + wid.y * nwg.x;
    if b >= arrayLength(&blocks) {
        return;
    }
    let blk = blocks[b];
    let h = groups[blk.group];
    for (var k = 0u; k < PER_THREAD; k++) {
        let j = k * WG + lid;
        if j >= blk.len {
            return;
        }
        let i = blk.start + j;
        var g = grad[i] * h.grad_scale;
        if MAXIMIZE {
            g = -g;
        }
        let p = param[i];
        g = g + h.weight_decay * p;
        g = g + h.l1 * sign(p);
        let s = sum[i] + g * g;
        sum[i] = s;
        let denom = sqrt(s) + h.eps;
        param[i] = p - h.clr * (g / denom);
    }
}
