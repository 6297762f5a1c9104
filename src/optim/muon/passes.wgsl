// muon/passes.wgsl — the entry point of Muon's kernel, assembled last: gpu/common.wgsl +
// grad/norm.wgsl + optim/prelude.wgsl + muon/update.wgsl + trust/reduce.wgsl + the generated
// roles + this file. One module, three pipelines chosen by override constants, recorded in
// the step's one compute pass after the gradient pipeline; the Newton-Schulz products
// (muon/ns.wgsl) run between REDUCE and the apply pass:
//
//   MEASURE (one dispatch per chunk, a workgroup per block):
//     u = direction(i, g, row)           the momentum (stored) and the update direction
//     scratch[x(l)] = u                  into the tensor's scratch matrix, transposed when it
//                                        has more rows than columns (so it is m x n, m <= n)
//     work[block.index] = (0, 0, m_u, s_u)   the block's overflow-safe L2 pair of u
//   REDUCE (one dispatch in all, a workgroup per matrix):
//     |u| = the matrix's pairs combined in a fixed order (no float atomics)
//     work[b] = (1 / max(|u|, eps), |u|, 0, 0) for each of its blocks b; NaN for a
//                                        non-finite |u| (never a silent finite update)
//   neither (the apply pass, one dispatch per chunk):
//     apply(i, o, row, lr_ratio)         o = the final scratch matrix at x(l) (divided by the
//                                        norm here only when NS_STEPS is 0)
// Every pass returns at once on a step the non-finite guard skips (the products in between
// then compute on stale scratch that nothing reads).
//
// Bindings 0-5 as prelude.wgsl, then:
//   6 storage, read_write  work: array<vec4<f32>>    one per block of all chunks
//   7 storage, read        matrices: array<Matrix>   one per tensor of the layout
//   8                      momentum_buffer (generated)
//   9 storage, read_write  scratch: array<f32>       the matrices' m x n scratch: X_0 for the
//                                                    measure pass, the last X for apply
// Guard rule: a workgroup returns when b is past its table (uniform, before any barrier);
// lanes past the block's end contribute (0, 0) and write nothing.
override MEASURE: bool = false;
override REDUCE: bool = false;

@group(0) @binding(6) var<storage, read_write> work: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> matrices: array<Matrix>;
@group(0) @binding(9) var<storage, read_write> scratch: array<f32>;

// Where element l (row-major in the tensor) sits in the scratch matrix: the tensor itself when
// rows <= cols, else its transpose.
fn scratch_index(m: Matrix, l: u32) -> u32 {
    if m.rows > m.cols {
        return m.x + (l % m.cols) * m.rows + l / m.cols;
    }
    return m.x + l;
}

fn reduce_matrix(b: u32, lid: u32) {
    if b >= arrayLength(&matrices) || skipped_step() {
        return;
    }
    let m = matrices[b];
    let t = tensor_pairs(m.first, m.count, lid);
    let norm = t.z * sqrt(t.w);
    var scale = 1.0 / max(norm, row_of(m.group).eps);
    if !finite(norm) {
        scale = poison(norm);
    }
    write_tensor(m.first, m.count, lid, vec4<f32>(scale, norm, 0.0, 0.0));
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.x + wid.y * nwg.x;
    if REDUCE {
        reduce_matrix(b, lid);
        return;
    }
    if b >= arrayLength(&blocks) || skipped_step() {
        return;
    }
    let blk = blocks[b];
    enter_block(blk);
    let h = row_of(blk.group);
    let f = grad_factors(blk.group);
    let m = matrices[blk.tensor];
    let i = blk.start / 4u + lid;
    let l = blk.local + 4u * lid;
    let in_block = 4u * lid < blk.len;
    var lanes = 0u;
    if in_block {
        lanes = min(4u, blk.len - 4u * lid);
    }
    if MEASURE {
        var mine = vec4<f32>(0.0);
        if in_block {
            let u = direction(i, load_grad(i, f), h);
            for (var k = 0u; k < lanes; k++) {
                scratch[scratch_index(m, l + k)] = u[k];
            }
            mine = vec4<f32>(0.0, 0.0, lane_pair(u, lanes));
        }
        let r = reduce_workgroup(lid, mine);
        if lid == 0u {
            work[blk.index] = r;
        }
        return;
    }
    if in_block {
        var o = V(0.0);
        for (var k = 0u; k < lanes; k++) {
            o[k] = scratch[scratch_index(m, l + k)];
        }
        if NS_STEPS == 0u {
            o = o * work[blk.index].x;
        }
        apply(i, o, h, m.lr_ratio);
    }
}
