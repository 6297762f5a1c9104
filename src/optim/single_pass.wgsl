// single_pass.wgsl — the entry point of every one-pass optimizer kernel, assembled last
// (gpu/common.wgsl + optim/prelude.wgsl + <name>/update.wgsl + the generated roles + this
// file): workgroup b takes
// block b of the chunk's table and calls the optimizer's `update` on each of its vec4s.
// The optimizers whose update needs a per-tensor reduction (LAMB, LARS) end with
// optim/trust/passes.wgsl instead, and kernels with 8-bit states with single_pass_q8.wgsl.

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
    if 4u * lid >= blk.len {
        return;
    }
    enter_block(blk);
    let i = blk.start / 4u + lid;
    update(i, load_grad(i, f), h);
}
