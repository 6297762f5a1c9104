//! Muon's matrices on the device: the per-tensor table its passes read
//! ([`Matrix`]), the scratch matrices, and the batched Newton-Schulz
//! iteration ([`Orthogonalize`], `ns.wgsl`): three dispatches per
//! iteration for all matrices together, recorded between the norm's
//! reduce pass and the apply pass.

use std::sync::Arc;

use super::MuonConfig;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Slot, grid};
use crate::layout::ParamLayout;
use crate::optim::trust::Segment;

/// The binding kind of the scratch matrix in Muon's kernel (binding 9,
/// after its one state).
pub(crate) const MATRIX_SLOT: Slot = Slot::StorageReadWrite;

/// Output tiles are `TILE x TILE` (`ns.wgsl`).
const TILE: u64 = 64;

/// One tensor as Muon's passes see it. Matches WGSL `struct Matrix`
/// (`passes.wgsl`, `ns.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Matrix {
    /// Its blocks' range in the one block numbering (`trust::segments`).
    first: u32,
    count: u32,
    group: u32,
    rows: u32,
    cols: u32,
    /// First element of its `m x n` scratch matrix in the X buffers.
    x: u32,
    /// First element of its `m x m` Gram matrices in the G and H buffers.
    gram: u32,
    /// `adjust_lr_fn`'s factor for its shape, rounded once from f64.
    lr_ratio: f32,
}

/// One output tile of a product. Matches WGSL `struct Tile` (`ns.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
struct Tile {
    matrix: u32,
    row: u32,
    col: u32,
    _pad0: u32,
}

/// The Newton-Schulz coefficients. Matches WGSL `struct Coefficients`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Coefficients {
    a: f32,
    b: f32,
    c: f32,
    _pad0: u32,
}

/// The table of every tensor of the layout, with the element counts of
/// the X and the Gram scratch buffers: the tensors of Muon's param groups
/// (all 2-D: `OptimizerSpec::resolve`) with their block ranges `segs`
/// (`trust::segments`), the others (a param group that runs another
/// algorithm) as empty `0 x 0` entries. Each matrix starts on a multiple
/// of 4 elements.
///
/// # Errors
/// A scratch buffer past `max_elems` elements (or past u32 indexing),
/// naming the first matrix that does not fit.
pub(crate) fn matrices(
    config: &MuonConfig,
    layout: &ParamLayout,
    segs: &[Segment],
    included: &[bool],
    max_elems: u64,
) -> Result<(Vec<Matrix>, u64, u64)> {
    let limit = max_elems.min(u32::MAX as u64);
    let (mut x, mut gram) = (0u64, 0u64);
    let mut out = Vec::with_capacity(segs.len());
    for ((t, s), &inc) in layout.tensors().iter().zip(segs).zip(included) {
        let (rows, cols) = match inc {
            true => (t.shape[0] as u64, t.shape[1] as u64),
            false => (0, 0),
        };
        let numel = rows * cols;
        let m = rows.min(cols);
        let (x_end, gram_end) = (x + numel, gram + m * m);
        if x_end > limit || gram_end > limit {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size".into(),
                needed: 4 * x_end.max(gram_end),
                available: 4 * limit,
                hint: format!(
                    "; Muon's Newton-Schulz scratch (each matrix once in one buffer, its Gram \
                     matrix in another) does not fit at `{}` ({rows} x {cols}): put some \
                     matrices in another optimizer",
                    t.name
                ),
            });
        }
        out.push(Matrix {
            first: s.first,
            count: s.count,
            group: s.group,
            rows: rows as u32,
            cols: cols as u32,
            x: x as u32,
            gram: gram as u32,
            lr_ratio: config.adjust_lr_fn.ratio(rows, cols) as f32,
        });
        x = x_end.next_multiple_of(4);
        gram = gram_end.next_multiple_of(4);
    }
    Ok((out, x, gram))
}

/// The output tiles of every matrix's `m x m` products (`wide`: `m x n`).
fn tiles(mats: &[Matrix], wide: bool) -> Vec<Tile> {
    let mut out = Vec::new();
    for (k, mat) in mats.iter().enumerate() {
        let (m, n) = (mat.rows.min(mat.cols) as u64, mat.rows.max(mat.cols) as u64);
        let cols = if wide { n } else { m };
        if m * n == 0 {
            continue;
        }
        for row in (0..m).step_by(TILE as usize) {
            for col in (0..cols).step_by(TILE as usize) {
                out.push(Tile {
                    matrix: k as u32,
                    row: row as u32,
                    col: col as u32,
                    _pad0: 0,
                });
            }
        }
    }
    out
}

/// The source of the products' module.
const NS_WGSL: &str = concat!(include_str!("matrix.wgsl"), include_str!("ns.wgsl"));

/// The batched Newton-Schulz iteration of one Muon optimizer: its five
/// pipelines (the Gram and update products with and without the first
/// iteration's normalization, the polynomial), scratch buffers, tile
/// tables and bind groups, all built once.
pub(crate) struct Orthogonalize {
    steps: u32,
    /// gram (first), gram, poly, update (first), update.
    kernels: [Arc<Kernel>; 5],
    /// X_0 and X_1 (the iteration ping-pongs between them).
    x: [wgpu::Buffer; 2],
    /// gram[src], poly, update[src].
    bind_groups: Vec<wgpu::BindGroup>,
    square: (u32, u32),
    wide: (u32, u32),
    _keep: Vec<wgpu::Buffer>,
}

impl Orthogonalize {
    /// Builds the pipelines, scratch and bind groups for `mats` (from
    /// [`matrices`]), reading the norms' reciprocals from `work` (the
    /// passes' per-block buffer). Call inside the optimizer's error scope.
    pub(crate) fn new(
        gpu: &Gpu,
        config: &MuonConfig,
        (mats, x_elems, gram_elems): (&[Matrix], u64, u64),
        matrices: &wgpu::Buffer,
        work: &wgpu::Buffer,
    ) -> Result<Orthogonalize> {
        let slots = [
            Slot::Uniform,
            Slot::StorageRead,
            Slot::StorageRead,
            Slot::StorageRead,
            Slot::StorageRead,
            Slot::StorageRead,
            Slot::StorageReadWrite,
        ];
        let kernel = |mode: u32, first: bool| {
            let constants = [("MODE", mode as f64), ("FIRST", first as u8 as f64)];
            let key = format!("optim/muon/ns/mode={mode}/first={first}");
            gpu.kernel(&key, NS_WGSL, &slots, &constants)
        };
        let kernels = [
            kernel(0, true)?,
            kernel(0, false)?,
            kernel(1, false)?,
            kernel(2, true)?,
            kernel(2, false)?,
        ];
        let (a, b, c) = config.ns_coefficients;
        let coefficients = gpu.create_buffer_init(
            "optim/muon/ns/coefficients",
            bytemuck::bytes_of(&Coefficients {
                a: a as f32,
                b: b as f32,
                c: c as f32,
                _pad0: 0,
            }),
            wgpu::BufferUsages::UNIFORM,
        );
        let storage = wgpu::BufferUsages::STORAGE;
        let x =
            [0, 1].map(|i| gpu.create_buffer(&format!("optim/muon/ns/x{i}"), 4 * x_elems, storage));
        let g = gpu.create_buffer("optim/muon/ns/gram", 4 * gram_elems, storage);
        let h = gpu.create_buffer("optim/muon/ns/poly", 4 * gram_elems, storage);
        let table = |wide: bool| {
            let t = tiles(mats, wide);
            let label = format!(
                "optim/muon/ns/tiles/{}",
                if wide { "wide" } else { "square" }
            );
            let buf = gpu.create_buffer_init(&label, bytemuck::cast_slice(&t), storage);
            (buf, t.len() as u32)
        };
        let (square_tiles, n_square) = table(false);
        let (wide_tiles, n_wide) = table(true);
        let bind = |label: &str, tiles: &wgpu::Buffer, io: [&wgpu::Buffer; 3]| {
            gpu.create_bind_group(
                &format!("optim/muon/ns/{label}"),
                &kernels[0].layout,
                &[
                    coefficients.as_entire_binding(),
                    tiles.as_entire_binding(),
                    matrices.as_entire_binding(),
                    work.as_entire_binding(),
                    io[0].as_entire_binding(),
                    io[1].as_entire_binding(),
                    io[2].as_entire_binding(),
                ],
            )
        };
        let bind_groups = vec![
            bind("gram0", &square_tiles, [&x[0], &x[0], &g]),
            bind("gram1", &square_tiles, [&x[1], &x[1], &g]),
            bind("poly", &square_tiles, [&g, &g, &h]),
            bind("update0", &wide_tiles, [&h, &x[0], &x[1]]),
            bind("update1", &wide_tiles, [&h, &x[1], &x[0]]),
        ];
        let max_dim = gpu.limits().max_compute_workgroups_per_dimension;
        Ok(Orthogonalize {
            steps: config.ns_steps,
            kernels,
            x,
            bind_groups,
            square: grid(n_square, max_dim),
            wide: grid(n_wide, max_dim),
            _keep: vec![coefficients, g, h, square_tiles, wide_tiles],
        })
    }

    /// The scratch the measure pass writes (X_0).
    pub(crate) fn x_first(&self) -> &wgpu::Buffer {
        &self.x[0]
    }

    /// The scratch that holds the result after `ns_steps` iterations.
    pub(crate) fn x_last(&self) -> &wgpu::Buffer {
        &self.x[self.steps as usize % 2]
    }

    /// Records the iterations: `3 x ns_steps` dispatches (none when every
    /// matrix is empty).
    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.wide.0 == 0 {
            return;
        }
        let mut run = |k: usize, bg: usize, g: (u32, u32)| {
            pass.set_pipeline(&self.kernels[k].pipeline);
            pass.set_bind_group(0, &self.bind_groups[bg], &[]);
            pass.dispatch_workgroups(g.0, g.1, 1);
        };
        for i in 0..self.steps as usize {
            let src = i % 2;
            let first = i == 0;
            run(if first { 0 } else { 1 }, src, self.square);
            run(2, 2, self.square);
            run(if first { 3 } else { 4 }, 3 + src, self.wide);
        }
    }

    /// Dispatches per step.
    pub(crate) fn dispatches(&self) -> usize {
        if self.wide.0 == 0 {
            0
        } else {
            3 * self.steps as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::{parse, rust_struct, wgsl_struct};
    use crate::layout::Placement;
    use crate::optim::trust::segments;

    #[test]
    fn structs_match_their_wgsl() {
        let (ns, _) = parse("ns", NS_WGSL);
        assert_eq!(
            wgsl_struct(&ns, "Tile"),
            rust_struct!(Tile {
                matrix,
                row,
                col,
                _pad0
            })
        );
        assert_eq!(
            wgsl_struct(&ns, "Coefficients"),
            rust_struct!(Coefficients { a, b, c, _pad0 })
        );
        let matrix = rust_struct!(Matrix {
            first,
            count,
            group,
            rows,
            cols,
            x,
            gram,
            lr_ratio
        });
        assert_eq!(wgsl_struct(&ns, "Matrix"), matrix);
        let muon = crate::gpu::layout_check::kernel_source(&MuonConfig::default());
        let (module, _) = parse("muon", &muon);
        assert_eq!(wgsl_struct(&module, "Matrix"), matrix);
    }

    #[test]
    fn tiles_cover_each_product_once() {
        let layout = ParamLayout::new(&[
            ("tall", &[130, 3][..]),
            ("empty", &[0, 4][..]),
            ("wide", &[65, 200][..]),
        ])
        .unwrap();
        let placement = Placement::new(&layout, 1 << 20).unwrap();
        let all = [true; 3];
        let segs = segments(&placement, &[0, 0, 0], &all, 0);
        let (mats, x, gram) =
            matrices(&MuonConfig::default(), &layout, &segs, &all, 1 << 20).unwrap();
        assert_eq!(mats[0].x, 0);
        assert_eq!(mats[2].x, 392, "130 x 3 = 390, then a multiple of 4");
        assert_eq!(x, (392 + 65 * 200) as u64);
        assert_eq!(gram, (12 + 65 * 65u64).next_multiple_of(4));
        assert_eq!(mats[0].lr_ratio, (130.0f64 / 3.0).sqrt() as f32);
        let square = tiles(&mats, false);
        let wide = tiles(&mats, true);
        // tall: m = 3, n = 130 (1 square tile, 1 x 3 wide); wide: m = 65, n = 200
        // (2 x 2 square, 2 x 4 wide); empty: none.
        assert_eq!(square.len(), 1 + 4);
        assert_eq!(wide.len(), 3 + 2 * 4);
        assert!(square.iter().chain(&wide).all(|t| t.matrix != 1));
        let err = matrices(&MuonConfig::default(), &layout, &segs, &all, 1000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`wide`"), "{err}");
        // A tensor of a param group that runs another algorithm takes no
        // scratch and no tiles, whatever its shape.
        let part = [false, true, true];
        let segs = segments(&placement, &[0, 0, 0], &part, 0);
        let (mats, x, _) =
            matrices(&MuonConfig::default(), &layout, &segs, &part, 1 << 20).unwrap();
        assert_eq!((mats[0].rows, mats[0].cols, mats[0].count), (0, 0, 0));
        assert_eq!(x, (65 * 200) as u64);
        assert!(tiles(&mats, true).iter().all(|t| t.matrix == 2));
    }
}
