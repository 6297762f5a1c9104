// mlp.wgsl — forward and backward passes of the example's 64-128-10 MLP (ReLU, softmax
// cross-entropy), written for the digits example. The parameters are read from the engine's
// params buffer and the gradients written straight into its grads buffer, at the element
// offsets of the engine's layout (fc1.weight [128, 64], fc1.bias [128], fc2.weight [10, 128],
// fc2.bias [10], PyTorch's nn.Linear convention: y = x W^T + b).
//
// Bindings (group 0):
//   0 uniform              dims: Dims
//   1 storage, read        x: array<f32>        all samples, 64 features each, scaled to [0, 1]
//   2 storage, read        y: array<u32>        labels 0..9
//   3 storage, read        idx: array<u32>      sample ids of the current batch at dims.batch_start
//   4 storage, read        params               the engine's params (chunk 0), in their dtype
//   5 storage, read_write  grads                the engine's grads (chunk 0), in their dtype
//   (4 and 5 are declared by model.rs before this file, with `param(e)` and
//   `store_grads(e, a, b)`: f32 arrays, or bf16 / f16 two per u32 through wgpu-optim's
//   precision::CONVERSIONS_WGSL; the backward passes write each gradient pair, elements e and
//   e + 1 with e even, from one invocation, so no two invocations share a u32.)
//   6 storage, read_write  scratch: array<f32>  hidden activations [B, 128], then dlogits [B, 10]
//   7 storage, read_write  metrics: array<f32>  (loss, correct) per sample at dims.metric_start + b
// Uniform layout: Dims, 12 x u32 = 48 bytes (Rust: Dims in model.rs).
// Every sum runs over a fixed index order in one invocation: no atomics, bitwise repeatable.
// Guard rule: every entry point returns when its linear index is past its range.

const N_IN: u32 = 64u;
const N_HID: u32 = 128u;
const N_OUT: u32 = 10u;

struct Dims {
    batch: u32,
    batch_start: u32,
    metric_start: u32,
    grad_divisor: u32,
    off_w1: u32,
    off_b1: u32,
    off_w2: u32,
    off_b2: u32,
    scratch_logits: u32,
    // The static loss scale the gradients are multiplied by (1 unless f16 gradients).
    loss_scale: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<u32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
@group(0) @binding(6) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(7) var<storage, read_write> metrics: array<f32>;

fn sample(b: u32) -> u32 {
    return idx[dims.batch_start + b];
}

// h[b, j] = relu(b1[j] + sum_i x[b, i] W1[j, i])
@compute @workgroup_size(64)
fn forward_hidden(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= dims.batch * N_HID {
        return;
    }
    let b = t / N_HID;
    let j = t % N_HID;
    let xs = sample(b) * N_IN;
    var s = param(dims.off_b1 + j);
    for (var i = 0u; i < N_IN; i++) {
        s = s + x[xs + i] * param(dims.off_w1 + j * N_IN + i);
    }
    scratch[b * N_HID + j] = max(s, 0.0);
}

// logits, softmax, loss, accuracy and dlogits = (p - onehot) / grad_divisor for sample b.
@compute @workgroup_size(64)
fn forward_head(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if b >= dims.batch {
        return;
    }
    var logits: array<f32, 10>;
    var best = 0u;
    var mx = -3.4e38;
    for (var k = 0u; k < N_OUT; k++) {
        var s = param(dims.off_b2 + k);
        for (var j = 0u; j < N_HID; j++) {
            s = s + scratch[b * N_HID + j] * param(dims.off_w2 + k * N_HID + j);
        }
        logits[k] = s;
        if s > mx {
            mx = s;
            best = k;
        }
    }
    var z = 0.0;
    for (var k = 0u; k < N_OUT; k++) {
        z = z + exp(logits[k] - mx);
    }
    let label = y[sample(b)];
    let loss = log(z) - (logits[label] - mx);
    metrics[(dims.metric_start + b) * 2u] = loss;
    metrics[(dims.metric_start + b) * 2u + 1u] = select(0.0, 1.0, best == label);
    let inv = dims.loss_scale / f32(dims.grad_divisor);
    for (var k = 0u; k < N_OUT; k++) {
        let p = exp(logits[k] - mx) / z;
        scratch[dims.scratch_logits + b * N_OUT + k] = (p - select(0.0, 1.0, k == label)) * inv;
    }
}

// dW2[k, j] = sum_b dlogits[b, k] h[b, j] (t < N_OUT * N_HID);  db2[k] = sum_b dlogits[b, k]
// (t = N_OUT * N_HID + k).
fn grad_out(t: u32) -> f32 {
    var s = 0.0;
    if t < N_OUT * N_HID {
        let k = t / N_HID;
        let j = t % N_HID;
        for (var b = 0u; b < dims.batch; b++) {
            s = s + scratch[dims.scratch_logits + b * N_OUT + k] * scratch[b * N_HID + j];
        }
    } else {
        let k = t - N_OUT * N_HID;
        for (var b = 0u; b < dims.batch; b++) {
            s = s + scratch[dims.scratch_logits + b * N_OUT + k];
        }
    }
    return s;
}

// One invocation per pair of gradients (N_OUT * N_HID and N_OUT are even: no pair spans W2 and b2).
@compute @workgroup_size(64)
fn backward_out(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = 2u * gid.x;
    if t >= N_OUT * N_HID + N_OUT {
        return;
    }
    if t < N_OUT * N_HID {
        store_grads(dims.off_w2 + t, grad_out(t), grad_out(t + 1u));
    } else {
        let k = t - N_OUT * N_HID;
        store_grads(dims.off_b2 + k, grad_out(t), grad_out(t + 1u));
    }
}

// dh[b, j] = (h[b, j] > 0) * sum_k dlogits[b, k] W2[k, j], written over h.
@compute @workgroup_size(64)
fn backward_hidden(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= dims.batch * N_HID {
        return;
    }
    let b = t / N_HID;
    let j = t % N_HID;
    var s = 0.0;
    for (var k = 0u; k < N_OUT; k++) {
        s = s + scratch[dims.scratch_logits + b * N_OUT + k] * param(dims.off_w2 + k * N_HID + j);
    }
    if scratch[b * N_HID + j] <= 0.0 {
        s = 0.0;
    }
    scratch[b * N_HID + j] = s;
}

// dW1[j, i] = sum_b dh[b, j] x[b, i] (t < N_HID * N_IN);  db1[j] = sum_b dh[b, j]
// (t = N_HID * N_IN + j).
fn grad_in(t: u32) -> f32 {
    var s = 0.0;
    if t < N_HID * N_IN {
        let j = t / N_IN;
        let i = t % N_IN;
        for (var b = 0u; b < dims.batch; b++) {
            s = s + scratch[b * N_HID + j] * x[sample(b) * N_IN + i];
        }
    } else {
        let j = t - N_HID * N_IN;
        for (var b = 0u; b < dims.batch; b++) {
            s = s + scratch[b * N_HID + j];
        }
    }
    return s;
}

// One invocation per pair of gradients (N_HID * N_IN and N_HID are even).
@compute @workgroup_size(64)
fn backward_in(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = 2u * gid.x;
    if t >= N_HID * N_IN + N_HID {
        return;
    }
    if t < N_HID * N_IN {
        store_grads(dims.off_w1 + t, grad_in(t), grad_in(t + 1u));
    } else {
        let j = t - N_HID * N_IN;
        store_grads(dims.off_b1 + j, grad_in(t), grad_in(t + 1u));
    }
}
