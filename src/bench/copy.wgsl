// bench/copy.wgsl — the streaming roofline: dst[i] = src[i], used by benches to measure what the
// device can move, next to the fused optimizer step moving the same bytes.
//
// Bindings (group 0):
//   0 storage, read        src: array<vec4<f32>>
//   1 storage, read_write  dst: array<vec4<f32>>
// No uniform. Dispatch: 2-D grid, one invocation per vec4, i = (wid.x + wid.y * nwg.x) * 256 + lid.
// Guard rule: every invocation returns when i >= arrayLength(&dst).

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= arrayLength(&dst) {
        return;
    }
    dst[i] = src[i];
}
