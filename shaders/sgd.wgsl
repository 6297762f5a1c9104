// sgd.wgsl — fused SGD step (momentum, dampening, Nesterov) over many tensors in one dispatch.
//
// Mirrors torch.optim.SGD `_single_tensor_sgd` (torch/optim/sgd.py):
//   g = grad * grad_scale; if MAXIMIZE { g = -g }
//   g = g + weight_decay * p + l1 * sign(p)
//   MOMENTUM: buf = first_step ? g : buf * momentum + (1 - dampening) * g
//             g = NESTEROV ? g + momentum * buf : buf
//   p = p - lr * g
// On the first step PyTorch clones the gradient into the buffer (no dampening); the host sets
// `first_step` = 1 for the optimizer's first step.
//
// Bindings (group 0):
//   0 uniform              groups: array<SgdGroup, 256>
//   1 storage, read        blocks: array<Block>
//   2 storage, read_write  param
//   3 storage, read        grad
//   4 storage, read_write  momentum_buffer (a 1-element dummy unless MOMENTUM)
// Uniform layout: SgdGroup is 8 x 4-byte scalars = 32 bytes (Rust: optim::sgd::SgdGroup).
// Dispatch and guard rule: as adam.wgsl (b >= arrayLength(&blocks) or j >= block.len returns).

override MAXIMIZE: bool = false;
override MOMENTUM: bool = false;
override NESTEROV: bool = false;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

struct Block {
    start: u32,
    len: u32,
    group: u32,
    _pad: u32,
}

struct SgdGroup {
    lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
    l1: f32,
    grad_scale: f32,
    first_step: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> groups: array<SgdGroup, 256>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> momentum_buffer: array<f32>;

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
        if MOMENTUM {
            var buf = g;
            if h.first_step == 0u {
                buf = momentum_buffer[i] * h.momentum + h.one_minus_dampening * g;
            }
            momentum_buffer[i] = buf;
            if NESTEROV {
                g = g + h.momentum * buf;
            } else {
                g = buf;
            }
        }
        param[i] = p - h.lr * g;
    }
}
