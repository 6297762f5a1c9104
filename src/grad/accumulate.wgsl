// grad/accumulate.wgsl — on-device gradient accumulation over k micro-batches (the engine side of
// PyTorch's k backward passes into .grad, DeepSpeed's gradient_accumulation_steps, optax
// MultiSteps): each micro-batch's backward pass writes a fresh gradient into the grads buffer,
// and this kernel folds it into the accumulation buffer, in the fixed order
// ((g1 + g2) + g3) + ... + gk:
//   FIRST:  accum = grad                     (micro-batch 1 of k)
//   FINAL:  grad = accum + grad              (micro-batch k: the optimizer step then reads the sum)
//   else:   accum = accum + grad
// Bindings (group 0):
//   0 storage, read_write  accum: array<vec4<f32>>   (one chunk of the accumulation role)
//   1 storage, read_write  grad: array<vec4<f32>>    (the same chunk of the grads)
// Dispatch: 2-D grid, one invocation per vec4 of the chunk, i = (wid.x + wid.y * nwg.x) * 256 + lid.
// Guard rule: every invocation returns when i >= arrayLength(&grad).
override FIRST: bool = false;
override FINAL: bool = false;

@group(0) @binding(0) var<storage, read_write> accum: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> grad: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= arrayLength(&grad) {
        return;
    }
    if FIRST {
        accum[i] = grad[i];
    } else if FINAL {
        grad[i] = accum[i] + grad[i];
    } else {
        accum[i] = accum[i] + grad[i];
    }
}
