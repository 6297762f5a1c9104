// single_pass_q8.wgsl — the entry point of one-pass kernels with 8-bit states, appended after
// the generated roles and precision/blockwise8.wgsl in place of single_pass.wgsl. Every
// invocation of a workgroup runs the update, since its 8-bit stores reduce over the workgroup:
// the ones past the block's end take its first vec4 and store nothing (q_active false).

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
    if SKIP_NONFINITE && control.found_inf != 0u {
        return;
    }
    let blk = blocks[b];
    var h = groups[blk.group];
    if SKIP_NONFINITE && control.skipped != 0u {
        h = after_skipped_steps(h, device_step(step, control.skipped));
    }
    let f = grad_factors(blk.group);
    let in_block = 4u * lid < blk.len;
    q8_enter(lid, in_block);
    enter_block(blk);
    let i = blk.start / 4u + select(0u, lid, in_block);
    update(i, load_grad(i, f), h);
}
