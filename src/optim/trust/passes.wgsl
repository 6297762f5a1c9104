// trust/passes.wgsl — the entry point of the optimizers whose update is scaled per tensor by
// a ratio of norms (LAMB, LARS), assembled last: gpu/common.wgsl + grad/norm.wgsl +
// optim/prelude.wgsl + <name>/update.wgsl + trust/reduce.wgsl + the generated roles + this
// file. One module, three pipelines chosen by
// override constants, recorded in the step's one compute pass after the gradient pipeline:
//
//   MEASURE (one dispatch per chunk, a workgroup per block, as the one-pass kernels):
//     d = direction(i, g, row)      the optimizer's update direction u of 4 elements and the
//                                   params p it is measured against (it may write the states
//                                   that come before the ratio: LAMB's exp_avg, exp_avg_sq)
//     work[block.index] = (m_p, s_p, m_u, s_u)     the block's overflow-safe L2 pairs of p and
//                                   u (grad/norm.wgsl), lanes past the block's end excluded
//   REDUCE (one dispatch in all, a workgroup per tensor of `tensors`):
//     (|p|, |u|) = the tensor's pairs combined in a fixed order (no float atomics)
//     r = trust_ratio(|p|, |u|, row)                 the optimizer's formula
//     work[b] = (r, |p|, |u|, 0) for each of the tensor's blocks b
//   neither (the apply pass, one dispatch per chunk):
//     apply(i, g, row, work[block.index].x)         the update itself, u recomputed from the
//                                                    states and g (no scratch tensor)
// So a step is 2 x chunks + 1 dispatches whatever the number of tensors (2 x pieces + 1 with
// per-tensor dispatch); LARS loads the gradient in both passes, LAMB's apply does not use it
// (its moments hold it); nothing is read back. Every pass returns at once on a
// step the non-finite guard skips.
//
// What an update.wgsl for these passes provides (besides `struct Row`, `after_skipped_steps`
// and its states from @binding(8) on):
//   fn direction(i: u32, g: V, h: Row) -> Direction
//   fn trust_ratio(p_norm: f32, u_norm: f32, h: Row) -> f32   (NaN norms where the tensor has a
//                                          non-finite value; `poison` gives a NaN ratio)
//   fn apply(i: u32, g: V, h: Row, ratio: f32)
//
// Bindings 0-5 as prelude.wgsl, then:
//   6 storage, read_write  work: array<vec4<f32>>   one per block of all chunks
//   7 storage, read        tensors: array<Segment>   one per tensor: its blocks' index range
// Guard rule: a workgroup returns when b is past its table (uniform, before any barrier);
// invocations past the block's or the tensor's end contribute (0, 0).
override MEASURE: bool = false;
override REDUCE: bool = false;

// Rust: optim::trust::Segment (16 bytes): the tensor's blocks are work[first .. first + count].
struct Segment {
    first: u32,
    count: u32,
    group: u32,
    _pad0: u32,
}

struct Direction {
    p: V,
    u: V,
}

@group(0) @binding(6) var<storage, read_write> work: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> tensors: array<Segment>;

fn reduce_tensor(b: u32, lid: u32) {
    if b >= arrayLength(&tensors) || skipped_step() {
        return;
    }
    let seg = tensors[b];
    let t = tensor_pairs(seg.first, seg.count, lid);
    let p_norm = t.x * sqrt(t.y);
    let u_norm = t.z * sqrt(t.w);
    let ratio = trust_ratio(p_norm, u_norm, row_of(seg.group));
    write_tensor(seg.first, seg.count, lid, vec4<f32>(ratio, p_norm, u_norm, 0.0));
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.x + wid.y * nwg.x;
    if REDUCE {
        reduce_tensor(b, lid);
        return;
    }
    if b >= arrayLength(&blocks) || skipped_step() {
        return;
    }
    let blk = blocks[b];
    enter_block(blk);
    let h = row_of(blk.group);
    let f = grad_factors(blk.group);
    let i = blk.start / 4u + lid;
    let in_block = 4u * lid < blk.len;
    if MEASURE {
        var mine = vec4<f32>(0.0);
        if in_block {
            let d = direction(i, load_grad(i, f), h);
            let lanes = min(4u, blk.len - 4u * lid);
            mine = vec4<f32>(lane_pair(d.p, lanes), lane_pair(d.u, lanes));
        }
        let r = reduce_workgroup(lid, mine);
        if lid == 0u {
            work[blk.index] = r;
        }
        return;
    }
    if in_block {
        apply(i, load_grad(i, f), h, work[blk.index].x);
    }
}
