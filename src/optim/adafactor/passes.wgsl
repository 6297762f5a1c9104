// adafactor/passes.wgsl — the entry point of Adafactor's kernel, assembled last:
// gpu/common.wgsl + grad/norm.wgsl + optim/prelude.wgsl + adafactor/update.wgsl +
// trust/reduce.wgsl + the generated roles (the params only) + this file. One module, five
// pipelines chosen by override constants, recorded in the step's one compute pass after the
// gradient pipeline:
//
//   ROWS_COLS (one dispatch per chunk, a workgroup per work item of the chunk's item table,
//     bound where the block table is):
//     row item:     the row's squared gradients summed in f32 in a fixed order (as torch's
//                   vector_norm: no rescaling, so they overflow where torch's do);
//                   row_var = lerp(row_var, sum / C, w); rows of C <= 1024 (a multiple of 4)
//                   go 1024 / C to a workgroup, a vec4 per invocation
//     column item:  the columns over a range of at most 256 rows: each column's sum into
//                   fscratch (added over the ranges by FINISH); 1024 columns a vec4 per
//                   invocation when C is a multiple of 4, else 64 columns x 4 row phases
//   FINISH (one dispatch in all):
//     column item:  up to 256 columns, each adding its ranges' sums in order;
//                   col_var = lerp(col_var, sum / R, w)
//     slice item:   mean of the slice's row_var (fixed order) -> max(mean, eps1) into fscratch
//   MEASURE (one dispatch per chunk, a workgroup per block):
//     vectors: variance = lerp(variance, g^2, w) (stored); u = g / sqrt(max(v, eps1^2));
//     work[block.index] = (m_p, s_p, m_u, s_u)     the block's L2 pairs of p (before the
//                                                  decay) and u
//   REDUCE (one dispatch in all, a workgroup per tensor of `table`):
//     scale = max(eps2, |p| / sqrt(n)) * rho / max(1, |u| / (sqrt(n) d)) into each of the
//     tensor's work entries; NaN when a norm is not finite (never a silent finite update)
//   neither (the apply pass, one dispatch per chunk):
//     p = p * (1 - lr weight_decay) - scale * u     u recomputed (no scratch tensor)
// Every pass returns at once on a step the non-finite guard skips.
//
// Bindings 0-5 as prelude.wgsl, then:
//   6 storage, read_write  work: array<vec4<f32>>     one per block of all chunks
//   7 storage, read        table: array<Factor>       one per tensor of the layout
//   8 storage, read_write  factors: array<f32>        the states: row_var, col_var per slice of
//                                                     each tensor of 2+ dims; variance of vectors
//   9 storage, read_write  fscratch: array<f32>       slice means, then the column sums
// Work items (ROWS_COLS, FINISH) reuse `struct Block`; `local` is the kind:
//   0 row:      start = the row's first element in the chunk, len = C, state = its row_var
//               (vec4 loads when C is a multiple of 4)
//   4 rows:     1024 / C rows of C (a multiple of 4) elements: start = the first row's first
//               element, len = rows x C, index = rows, state = the first row's row_var (the
//               rows of a tensor's slices follow each other, so an item may span slices)
//   6 rows:     the same for C < 128 not a multiple of 4: 256 / C rows, an element per
//               invocation
//   1 column:   start = element (slice, first row, first column), len = columns (<= 64),
//               index = rows (<= 256), state = fscratch offset of its first column's sum
//   5 columns:  the same for C a multiple of 4, len = columns (<= 1024), a vec4 per invocation
//   2 columns:  start = fscratch offset of range 0's first sum, len = columns (<= 256),
//               index = ranges, state = col_var of its first column
//   3 slice:    start = fscratch offset of the slice's mean, len = R, state = its first row_var
// and for slices of R <= 64 rows (3 x 3 convolution kernels, short matrices):
//   7 columns:  (ROWS_COLS) a thread per (slice, column) pair index + lid of the tensor: start =
//               the tensor's first element, len = pairs, state = the first pair's col_var;
//               the whole column summed and col_var written at once (no ranges, no FINISH)
//   8 slices:   (FINISH) a thread per slice: start = fscratch offset of the first slice's mean,
//               len = slices, state = the first slice's first row_var
// Guard rule: a workgroup returns when b is past its table (uniform, before any barrier).
override MEASURE: bool = false;
override REDUCE: bool = false;
override ROWS_COLS: bool = false;
override FINISH: bool = false;

// Rust: optim::adafactor::factors::Factor (48 bytes): its blocks are work[first .. + count].
struct Factor {
    first: u32,
    count: u32,
    group: u32,
    // 1 for a tensor of 2+ dims (row_var, col_var), 0 for a vector (variance).
    factored: u32,
    rows: u32,
    cols: u32,
    row_at: u32,
    col_at: u32,
    var_at: u32,
    means_at: u32,
    sqrt_n: f32,
    _pad0: u32,
}

@group(0) @binding(6) var<storage, read_write> work: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> table: array<Factor>;
@group(0) @binding(8) var<storage, read_write> factors: array<f32>;
@group(0) @binding(9) var<storage, read_write> fscratch: array<f32>;

// The processed gradients of vec4 q of the chunk (l1 with its params' signs).
fn grad4(q: u32, f: GradFactors, h: Row) -> V {
    return adafactor_grad(load_grad(q, f), load_param(q), h);
}

// The processed gradient of chunk element e.
fn grad_at(e: u32, f: GradFactors, h: Row) -> f32 {
    return grad4(e / 4u, f, h)[e % 4u];
}

// The workgroup's sum of `x` in a fixed order (radix 16, as reduce_workgroup).
fn sum_workgroup(lid: u32, x: f32) -> f32 {
    wpairs[lid] = vec4<f32>(x, 0.0, 0.0, 0.0);
    workgroupBarrier();
    if lid < 16u {
        var acc = wpairs[16u * lid].x;
        for (var k = 1u; k < 16u; k++) {
            acc = acc + wpairs[16u * lid + k].x;
        }
        wsixteen[lid] = vec4<f32>(acc, 0.0, 0.0, 0.0);
    }
    workgroupBarrier();
    if lid == 0u {
        var acc = wsixteen[0].x;
        for (var k = 1u; k < 16u; k++) {
            acc = acc + wsixteen[k].x;
        }
        wresult = vec4<f32>(acc, 0.0, 0.0, 0.0);
    }
    workgroupBarrier();
    return wresult.x;
}

fn rows_cols(blk: Block, lid: u32) {
    // Which copy of the params (master or not) the l1 signs read.
    enter_group(blk.group);
    let h = row_of(blk.group);
    let f = grad_factors(blk.group);
    let cols = table[blk.tensor].cols;
    if blk.local == 4u {
        // `index` rows of C (a multiple of 4, at most 1024) elements: a vec4 per invocation,
        // then each row's C / 4 partial sums added in order by one invocation.
        var mine = 0.0;
        if 4u * lid < blk.len {
            let g = grad4(blk.start / 4u + lid, f, h);
            mine = dot(g, g);
        }
        wpairs[lid] = vec4<f32>(mine, 0.0, 0.0, 0.0);
        workgroupBarrier();
        if lid < blk.index {
            let per = cols / 4u;
            var acc = wpairs[lid * per].x;
            for (var k = 1u; k < per; k++) {
                acc = acc + wpairs[lid * per + k].x;
            }
            let s = blk.state + lid;
            factors[s] = lerp1(factors[s], acc / f32(cols), h.w);
        }
        return;
    }
    if blk.local == 6u {
        // `index` rows of C < 128 elements (any C): an element per invocation, then each row's
        // C squares added in order by one invocation.
        var mine = 0.0;
        if lid < blk.len {
            let g = grad_at(blk.start + lid, f, h);
            mine = g * g;
        }
        wpairs[lid] = vec4<f32>(mine, 0.0, 0.0, 0.0);
        workgroupBarrier();
        if lid < blk.index {
            var acc = wpairs[lid * cols].x;
            for (var k = 1u; k < cols; k++) {
                acc = acc + wpairs[lid * cols + k].x;
            }
            let s = blk.state + lid;
            factors[s] = lerp1(factors[s], acc / f32(cols), h.w);
        }
        return;
    }
    if blk.local == 7u {
        // Short slices (R <= 64): a thread per (slice, column) pair p = index + lid, summing
        // its column's R squares in order and writing col_var at once.
        if lid < blk.len {
            let m = table[blk.tensor];
            let p = blk.index + lid;
            let b = p / cols;
            let c = p - b * cols;
            let first = blk.start + b * m.rows * cols + c;
            var acc = 0.0;
            for (var r = 0u; r < m.rows; r++) {
                let g = grad_at(first + r * cols, f, h);
                acc = acc + g * g;
            }
            let s = blk.state + lid;
            factors[s] = lerp1(factors[s], acc / f32(m.rows), h.w);
        }
        return;
    }
    if blk.local == 5u {
        // Up to 1024 columns (C a multiple of 4) over `index` rows: a vec4 of columns per
        // invocation, no barrier.
        if 4u * lid < blk.len {
            var acc = V(0.0);
            for (var r = 0u; r < blk.index; r++) {
                let g = grad4((blk.start + r * cols) / 4u + lid, f, h);
                acc = acc + g * g;
            }
            for (var k = 0u; k < min(4u, blk.len - 4u * lid); k++) {
                fscratch[blk.state + 4u * lid + k] = acc[k];
            }
        }
        return;
    }
    if blk.local == 0u {
        var x = 0.0;
        if blk.len % 4u == 0u {
            // C a multiple of 4 (every row starts on a vec4): vec4 loads.
            for (var j = lid; j < blk.len / 4u; j += WG) {
                let g = grad4(blk.start / 4u + j, f, h);
                x = x + dot(g, g);
            }
        } else {
            for (var j = lid; j < blk.len; j += WG) {
                let g = grad_at(blk.start + j, f, h);
                x = x + g * g;
            }
        }
        let total = sum_workgroup(lid, x);
        if lid == 0u {
            factors[blk.state] = lerp1(factors[blk.state], total / f32(blk.len), h.w);
        }
        return;
    }
    // A column item: 64 columns x 4 phases of rows.
    let col = lid % 64u;
    let phase = lid / 64u;
    var acc = 0.0;
    if col < blk.len {
        for (var r = phase; r < blk.index; r += 4u) {
            let g = grad_at(blk.start + r * cols + col, f, h);
            acc = acc + g * g;
        }
    }
    wpairs[lid] = vec4<f32>(acc, 0.0, 0.0, 0.0);
    workgroupBarrier();
    if lid < blk.len {
        var sum = wpairs[lid].x;
        for (var k = 1u; k < 4u; k++) {
            sum = sum + wpairs[lid + 64u * k].x;
        }
        fscratch[blk.state + lid] = sum;
    }
}

fn finish(blk: Block, lid: u32) {
    let h = row_of(blk.group);
    let m = table[blk.tensor];
    if blk.local == 2u {
        if lid < blk.len {
            var acc = 0.0;
            for (var q = 0u; q < blk.index; q++) {
                acc = acc + fscratch[blk.start + q * m.cols + lid];
            }
            let s = blk.state + lid;
            factors[s] = lerp1(factors[s], acc / f32(m.rows), h.w);
        }
        return;
    }
    if blk.local == 8u {
        // Short slices: a thread per slice, its R row variances added in order.
        if lid < blk.len {
            let first = blk.state + lid * m.rows;
            var acc = 0.0;
            for (var r = 0u; r < m.rows; r++) {
                acc = acc + factors[first + r];
            }
            fscratch[blk.start + lid] = clamp_min(acc / f32(m.rows), h.eps1);
        }
        return;
    }
    var x = 0.0;
    for (var j = lid; j < blk.len; j += WG) {
        x = x + factors[blk.state + j];
    }
    let total = sum_workgroup(lid, x);
    if lid == 0u {
        fscratch[blk.start] = clamp_min(total / f32(blk.len), h.eps1);
    }
}

fn reduce_tensor(b: u32, lid: u32) {
    if b >= arrayLength(&table) || skipped_step() {
        return;
    }
    let m = table[b];
    let t = tensor_pairs(m.first, m.count, lid);
    let p_norm = t.x * sqrt(t.y);
    let u_norm = t.z * sqrt(t.w);
    let h = row_of(m.group);
    let alpha = max(h.eps2, p_norm / m.sqrt_n) * h.rho;
    var scale = alpha / max(1.0, u_norm / (m.sqrt_n * h.d));
    if !(finite(p_norm) && finite(u_norm)) {
        scale = poison(p_norm + u_norm);
    }
    write_tensor(m.first, m.count, lid, vec4<f32>(scale, p_norm, u_norm, 0.0));
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
    if ROWS_COLS {
        rows_cols(blk, lid);
        return;
    }
    if FINISH {
        finish(blk, lid);
        return;
    }
    enter_block(blk);
    let h = row_of(blk.group);
    let f = grad_factors(blk.group);
    let m = table[blk.tensor];
    let i = blk.start / 4u + lid;
    let l = blk.local + 4u * lid;
    let in_block = 4u * lid < blk.len;
    var lanes = 0u;
    var p = V(0.0);
    var u = V(0.0);
    if in_block {
        lanes = min(4u, blk.len - 4u * lid);
        p = load_param(i);
        let g = adafactor_grad(load_grad(i, f), p, h);
        if m.factored == 0u {
            for (var k = 0u; k < lanes; k++) {
                let s = m.var_at + l + k;
                var v = factors[s];
                if MEASURE {
                    v = lerp1(v, g[k] * g[k], h.w);
                    factors[s] = v;
                }
                u[k] = direction1(g[k], v, h);
            }
        } else {
            // Lane 0's (slice, row, column), then the next lanes' by stepping.
            let slice = m.rows * m.cols;
            var b = l / slice;
            let rem = l - b * slice;
            var r = rem / m.cols;
            var c = rem - r * m.cols;
            for (var k = 0u; k < lanes; k++) {
                let v = factors[m.row_at + b * m.rows + r] * factors[m.col_at + b * m.cols + c]
                    / fscratch[m.means_at + b];
                u[k] = direction1(g[k], v, h);
                c += 1u;
                if c == m.cols {
                    c = 0u;
                    r += 1u;
                    if r == m.rows {
                        r = 0u;
                        b += 1u;
                    }
                }
            }
        }
    }
    if MEASURE {
        var mine = vec4<f32>(0.0);
        if in_block {
            mine = vec4<f32>(lane_pair(p, lanes), lane_pair(u, lanes));
        }
        let r = reduce_workgroup(lid, mine);
        if lid == 0u {
            work[blk.index] = r;
        }
        return;
    }
    if in_block {
        apply4(i, u, h, work[blk.index].x);
    }
}
