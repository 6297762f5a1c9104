// muon/ns.wgsl — Muon's Newton-Schulz iteration on the device: one batched matrix product per
// dispatch for every matrix of the optimizer together (torch's loop over tensors, fused), in
// f32. Each matrix's scratch X is m x n (m <= n, row-major, the tensor transposed when it has
// more rows than columns); one iteration is three dispatches, MODE chosen by an override:
//
//   MODE 0 (gram):    G = X X^T                     m x m, inner dimension n
//   MODE 1 (poly):    H = b G + c (G G)             m x m, inner dimension m
//   MODE 2 (update):  X' = a X + H X                m x n, inner dimension m
//
// with (a, b, c) = ns_coefficients, as torch's two `addmm`s. In the first iteration (FIRST)
// every read of X is multiplied by the matrix's 1 / max(|X|_F, eps) (work[first].x, written by
// muon/passes.wgsl's REDUCE): the normalization torch does before the loop, folded into the
// loads, so it needs no pass of its own and nothing overflows before it.
//
// Workgroup t computes the 64 x 64 output tile tiles[t] (invocation (x, y) of 16 x 16 computes
// its 4 x 4 outputs), stepping through the inner dimension 16 at a time with both operands'
// tiles in workgroup memory, zero-filled past the matrix's edge. Each output is one f32 sum in
// the order of the inner index, so results are bitwise reproducible.
//
// Bindings (group 0):
//   0 uniform              coefficients: Coefficients
//   1 storage, read        tiles: array<Tile>
//   2 storage, read        matrices: array<Matrix>     (muon/matrix.wgsl)
//   3 storage, read        work: array<vec4<f32>>      the norms' reciprocals
//   4 storage, read        lhs: array<f32>             X (gram), G (poly), H (update)
//   5 storage, read        rhs: array<f32>             X (gram, update), G (poly)
//   6 storage, read_write  out: array<f32>             G (gram), H (poly), X' (update)
// Guard rule: a workgroup returns when t is past its table (uniform, before any barrier).
override MODE: u32 = 0u;
override FIRST: bool = false;

// Rust: optim::muon::ns::Coefficients (16 bytes).
struct Coefficients {
    a: f32,
    b: f32,
    c: f32,
    _pad0: u32,
}

// Rust: optim::muon::ns::Tile (16 bytes): the output tile's matrix and first row and column.
struct Tile {
    matrix: u32,
    row: u32,
    col: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> coefficients: Coefficients;
@group(0) @binding(1) var<storage, read> tiles: array<Tile>;
@group(0) @binding(2) var<storage, read> matrices: array<Matrix>;
@group(0) @binding(3) var<storage, read> work: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> lhs: array<f32>;
@group(0) @binding(5) var<storage, read> rhs: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const TILE: u32 = 64u;
const INNER: u32 = 16u;

// ta[k][r]: the left operand's tile, transposed; tb[k][c]: the right operand's.
var<workgroup> ta: array<array<f32, 64>, 16>;
var<workgroup> tb: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = wid.x + wid.y * nwg.x;
    if t >= arrayLength(&tiles) {
        return;
    }
    let tile = tiles[t];
    let mat = matrices[tile.matrix];
    let m = min(mat.rows, mat.cols);
    let n = max(mat.rows, mat.cols);
    // The product's shape (rows x cols, inner dimension), and where its operands start.
    var cols = m;
    var inner = m;
    var lhs_at = mat.gram;
    var rhs_at = mat.gram;
    if MODE == 0u {
        inner = n;
        lhs_at = mat.x;
        rhs_at = mat.x;
    } else if MODE == 2u {
        cols = n;
        rhs_at = mat.x;
    }
    // The normalization of X, in the first iteration's reads of it.
    var s_lhs = 1.0;
    var s_rhs = 1.0;
    if FIRST {
        let s = work[mat.first].x;
        if MODE == 0u {
            s_lhs = s;
        }
        s_rhs = s;
    }
    let tx = lid3.x;
    let ty = lid3.y;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < inner; k0 += INNER) {
        for (var q = 0u; q < 4u; q++) {
            let e = lid + 256u * q;
            // Left operand: row r of the tile, inner index k (consecutive invocations read
            // consecutive k of one row).
            let r = e / INNER;
            let k = e % INNER;
            let gi = tile.row + r;
            let gk = k0 + k;
            var a = 0.0;
            if gi < m && gk < inner {
                a = lhs[lhs_at + gi * inner + gk] * s_lhs;
            }
            ta[k][r] = a;
            // Right operand: entry (k, c) of the tile. For the Gram product it is X^T, read as
            // X[c][k] (consecutive invocations read consecutive k of one row of X); otherwise
            // consecutive invocations read consecutive columns.
            var b = 0.0;
            if MODE == 0u {
                let c = e / INNER;
                let kk = e % INNER;
                let gj = tile.col + c;
                let gkk = k0 + kk;
                if gj < cols && gkk < inner {
                    b = rhs[rhs_at + gj * inner + gkk] * s_rhs;
                }
                tb[kk][c] = b;
            } else {
                let kk = e / TILE;
                let c = e % TILE;
                let gj = tile.col + c;
                let gkk = k0 + kk;
                if gj < cols && gkk < inner {
                    b = rhs[rhs_at + gkk * cols + gj] * s_rhs;
                }
                tb[kk][c] = b;
            }
        }
        workgroupBarrier();
        for (var k = 0u; k < INNER; k++) {
            let a = vec4<f32>(ta[k][4u * ty], ta[k][4u * ty + 1u], ta[k][4u * ty + 2u], ta[k][4u * ty + 3u]);
            let b = vec4<f32>(tb[k][4u * tx], tb[k][4u * tx + 1u], tb[k][4u * tx + 2u], tb[k][4u * tx + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i][0] = acc[i][0] + a[i] * b.x;
                acc[i][1] = acc[i][1] + a[i] * b.y;
                acc[i][2] = acc[i][2] + a[i] * b.z;
                acc[i][3] = acc[i][3] + a[i] * b.w;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let gi = tile.row + 4u * ty + i;
        for (var j = 0u; j < 4u; j++) {
            let gj = tile.col + 4u * tx + j;
            if gi < m && gj < cols {
                let at = gi * cols + gj;
                var v = acc[i][j];
                if MODE == 1u {
                    v = coefficients.b * rhs[rhs_at + at] + coefficients.c * v;
                } else if MODE == 2u {
                    v = coefficients.a * (rhs[rhs_at + at] * s_rhs) + v;
                }
                if MODE == 2u {
                    out[mat.x + at] = v;
                } else {
                    out[mat.gram + at] = v;
                }
            }
        }
    }
}
