// single_pass_q8.wgsl — the entry point of one-pass kernels with 8-bit states, appended after
// the generated roles and precision/blockwise8.wgsl in place of single_pass.wgsl. Every
// invocation of a workgroup runs the update, since the 8-bit stores reduce over the
// workgroup: those past the block's end take its first vec4 and store nothing (q_active
// false). q8_begin decodes the 8-bit states before the update, q8_flush stores them after it.

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.x + wid.y * nwg.x;
    if b >= arrayLength(&blocks) || skipped_step() {
        return;
    }
    let blk = blocks[b];
    let group = table_group(blk.group);
    let h = row_of(group);
    let f = grad_factors(group);
    let in_block = 4u * lid < blk.len;
    q8_enter(lid, in_block);
    enter_block(blk);
    let i = blk.start / 4u + select(0u, lid, in_block);
    q8_begin(i);
    update(i, load_grad(i, f), h);
    q8_flush(i);
}
