// muon/matrix.wgsl — the per-tensor table of Muon's passes (muon/passes.wgsl) and products
// (muon/ns.wgsl), prepended to both.

// Rust: optim::muon::Matrix (32 bytes). The tensor's blocks are work[first .. first + count]
// (one block numbering over all chunks, optim/trust/mod.rs); its scratch matrix starts at
// element `x` of the X buffers, its m x m Gram matrices at `gram` of the G and H buffers.
struct Matrix {
    first: u32,
    count: u32,
    group: u32,
    rows: u32,
    cols: u32,
    x: u32,
    gram: u32,
    lr_ratio: f32,
}

