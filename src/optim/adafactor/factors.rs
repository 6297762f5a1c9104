//! Adafactor's factored second moments on the device: where each tensor's
//! states sit in the one `factors` buffer (row and column variances per
//! `[.., R, C]` slice of a tensor of two or more dimensions, a variance per
//! element of a vector), the work items of the row / column passes, the
//! per-tensor table of the reduce pass, and the two extra pipelines with
//! their bind groups.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Slot, grid};
use crate::layout::{ParamLayout, Placement};
use crate::optim::blocks::{BLOCK_ELEMS, Block};
use crate::optim::trust::Segment;
use crate::params::ROLE_USAGE;

/// Rows one column item sums (the column pass's ranges).
const RANGE_ROWS: u64 = 256;
/// Columns of one column item of the ROWS_COLS pass (64 columns x 4 row
/// phases = 256 invocations).
const PART_COLS: u64 = 64;
/// Columns of one column item of the FINISH pass (a column per invocation).
const FINISH_COLS: u64 = 256;
/// Slices of at most this many rows (convolution kernels' 3 x 3, short
/// matrices) take a thread per (slice, column) that sums the whole column
/// and writes `col_var` at once, and a thread per slice for its mean: no
/// column ranges, no workgroup per slice.
const SHORT_ROWS: u64 = 64;

/// The bindings after the trust passes' two: the states and the scratch.
pub(crate) const FACTORS_SLOTS: [Slot; 2] = [Slot::StorageReadWrite, Slot::StorageReadWrite];

/// The override constants of the two extra pipelines.
pub(crate) const ROWS_COLS: (&str, f64) = ("ROWS_COLS", 1.0);
pub(crate) const FINISH: (&str, f64) = ("FINISH", 1.0);

/// The states of a tensor of `shape`, torch's names, with their element
/// counts: `row_var` (R per slice) and `col_var` (C per slice) for two or
/// more dimensions, else `variance` (one per element).
pub(crate) fn states_of(shape: &[usize]) -> Vec<(&'static str, usize)> {
    let numel: usize = shape.iter().product();
    if shape.len() < 2 {
        return vec![("variance", numel)];
    }
    let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let batch = shape[..shape.len() - 2].iter().product::<usize>();
    vec![("row_var", batch * r), ("col_var", batch * c)]
}

/// torch's shape of state `name` of a tensor of `shape`: `row_var` with the
/// last dimension 1, `col_var` with the next-to-last 1, `variance` the
/// tensor's own.
pub(crate) fn state_shape(shape: &[usize], name: &str) -> Vec<usize> {
    let mut s = shape.to_vec();
    let n = s.len();
    match name {
        "row_var" => s[n - 1] = 1,
        "col_var" => s[n - 2] = 1,
        _ => {}
    }
    s
}

/// One tensor's entry of the reduce pass's table, read by the measure and
/// apply passes too. Matches WGSL `struct Factor` (`passes.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Factor {
    first: u32,
    count: u32,
    group: u32,
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

/// Where every tensor's states are, and the work items, decided on the
/// host when the optimizer is built.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// One entry per tensor of the layout (empty for the tensors of other
    /// parts).
    pub(crate) table: Vec<Factor>,
    /// Each tensor's states: (name, first element in `factors`, count).
    states: Vec<Vec<(&'static str, u64, u64)>>,
    /// Elements of the states buffer and of the scratch.
    factors_len: u64,
    scratch_len: u64,
    /// The row and column items of each chunk.
    items: Vec<(usize, Vec<Block>)>,
    /// The FINISH pass's items.
    finish: Vec<Block>,
}

impl Layout {
    /// The placement of the tensors marked in `included`, whose block
    /// ranges are `segs` (`trust::segments`).
    ///
    /// # Errors
    /// A tensor of two or more dimensions cut across chunks (the row and
    /// column passes read one chunk), or buffers past `max_elems` f32s.
    pub(crate) fn new(
        layout: &ParamLayout,
        placement: &Placement,
        segs: &[Segment],
        included: &[bool],
        max_elems: u64,
    ) -> Result<Layout> {
        let mut table = Vec::with_capacity(layout.len());
        let mut states = Vec::with_capacity(layout.len());
        let (mut at, mut scratch) = (0u64, 0u64);
        let mut items: Vec<(usize, Vec<Block>)> = Vec::new();
        let mut finish = Vec::new();
        for (k, ((t, s), &inc)) in layout.tensors().iter().zip(segs).zip(included).enumerate() {
            let mut f = Factor {
                first: s.first,
                count: s.count,
                group: s.group,
                factored: 0,
                rows: 0,
                cols: 0,
                row_at: 0,
                col_at: 0,
                var_at: 0,
                means_at: 0,
                sqrt_n: (t.numel as f64).sqrt() as f32,
                _pad0: 0,
            };
            if !inc {
                table.push(f);
                states.push(Vec::new());
                continue;
            }
            let mine: Vec<(&'static str, u64, u64)> = states_of(&t.shape)
                .into_iter()
                .scan(at, |next, (name, n)| {
                    let start = *next;
                    *next += n as u64;
                    Some((name, start, n as u64))
                })
                .collect();
            at += mine.iter().map(|m| m.2).sum::<u64>();
            if t.shape.len() < 2 {
                f.var_at = mine[0].1 as u32;
            } else if t.numel > 0 {
                let pieces = placement.pieces(k);
                if pieces.len() != 1 {
                    return Err(Error::invalid(
                        format!("tensor `{}`", t.name),
                        format!("{:?} in {} chunks", t.shape, pieces.len()),
                        "a tensor of 2+ dimensions inside one chunk of its ParamSet",
                        format!(
                            "Adafactor's row and column passes read a factored tensor from one \
                             chunk, and `{}` ({} elements) is cut at the ParamSet's chunks of {} \
                             elements: build the ParamSet with larger chunks \
                             (ParamSet::with_chunk_elems) or put it in another param group",
                            t.name,
                            t.numel,
                            placement.chunk_elems()
                        ),
                    ));
                }
                let n = t.shape.len();
                let (rows, cols) = (t.shape[n - 2] as u64, t.shape[n - 1] as u64);
                let batch = t.numel / (rows * cols);
                f.factored = 1;
                f.rows = rows as u32;
                f.cols = cols as u32;
                f.row_at = mine[0].1 as u32;
                f.col_at = mine[1].1 as u32;
                f.means_at = scratch as u32;
                let short = rows <= SHORT_ROWS;
                let ranges = rows.div_ceil(RANGE_ROWS);
                let sums_at = scratch + batch;
                scratch = match short {
                    true => sums_at,
                    false => sums_at + batch * ranges * cols,
                };
                let (chunk, base) = (pieces[0].chunk, pieces[0].chunk_offset);
                let chunk_items = match items.iter_mut().find(|(c, _)| *c == chunk) {
                    Some((_, v)) => v,
                    None => {
                        items.push((chunk, Vec::new()));
                        &mut items.last_mut().expect("just pushed").1
                    }
                };
                let item = |start: u64, len: u64, index: u64, state: u64, kind: u32| Block {
                    start: start as u32,
                    len: len as u32,
                    group: s.group,
                    index: index as u32,
                    state: state as u32,
                    tensor: k as u32,
                    local: kind,
                };
                // The rows of all slices follow each other (row r of slice
                // b is row b R + r of the tensor, its row_var slot too), so
                // an item may take rows of several slices: C <= 1024 a
                // multiple of 4 (every row starts on a vec4), 1024 / C rows
                // with a vec4 per invocation; other C < 128, 256 / C rows
                // with an element per invocation (a 3 x 3 convolution
                // kernel's rows of 3: 85 an item); else an item per row.
                let (per_item, kind) = if cols % 4 == 0 && cols <= BLOCK_ELEMS {
                    (BLOCK_ELEMS / cols, 4)
                } else if cols < 128 {
                    (256 / cols, 6)
                } else {
                    (1, 0)
                };
                let all_rows = batch * rows;
                for r in (0..all_rows).step_by(per_item as usize) {
                    let row_var = f.row_at as u64 + r;
                    let n = per_item.min(all_rows - r);
                    match kind {
                        0 => chunk_items.push(item(base + r * cols, cols, 0, row_var, 0)),
                        _ => chunk_items.push(item(base + r * cols, n * cols, n, row_var, kind)),
                    }
                }
                if short {
                    // A thread per (slice, column) pair p = b C + c (its
                    // col_var slot col_at + p), 256 pairs an item; a thread
                    // per slice for the means, 256 slices an item.
                    let pairs = batch * cols;
                    for p0 in (0..pairs).step_by(256) {
                        let n = 256.min(pairs - p0);
                        chunk_items.push(item(base, n, p0, f.col_at as u64 + p0, 7));
                    }
                    for b0 in (0..batch).step_by(256) {
                        let n = 256.min(batch - b0);
                        let first_row = f.row_at as u64 + b0 * rows;
                        finish.push(item(f.means_at as u64 + b0, n, 0, first_row, 8));
                    }
                }
                for b in (0..batch).filter(|_| !short) {
                    let slice = base + b * rows * cols;
                    // Columns: with C a multiple of 4, 1024 columns per item
                    // (a vec4 of columns per invocation, no barrier);
                    // else 64 columns x 4 row phases.
                    let (width, kind) = if cols % 4 == 0 {
                        (BLOCK_ELEMS, 5)
                    } else {
                        (PART_COLS, 1)
                    };
                    for q in 0..ranges {
                        let r0 = q * RANGE_ROWS;
                        let n_rows = RANGE_ROWS.min(rows - r0);
                        for c0 in (0..cols).step_by(width as usize) {
                            let w = width.min(cols - c0);
                            let sum = sums_at + (b * ranges + q) * cols + c0;
                            let first = slice + r0 * cols + c0;
                            chunk_items.push(item(first, w, n_rows, sum, kind));
                        }
                    }
                    for c0 in (0..cols).step_by(FINISH_COLS as usize) {
                        let w = FINISH_COLS.min(cols - c0);
                        let sum = sums_at + b * ranges * cols + c0;
                        let col_var = f.col_at as u64 + b * cols + c0;
                        finish.push(item(sum, w, ranges, col_var, 2));
                    }
                    let first_row = f.row_at as u64 + b * rows;
                    finish.push(item(f.means_at as u64 + b, rows, 0, first_row, 3));
                }
            }
            table.push(f);
            states.push(mine);
        }
        let limit = max_elems.min(u32::MAX as u64);
        if at.max(scratch) > limit {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size".into(),
                needed: 4 * at.max(scratch),
                available: 4 * limit,
                hint: "; Adafactor's states (or their scratch) of all its tensors live in one \
                       buffer: put some tensors in another param group or optimizer"
                    .into(),
            });
        }
        Ok(Layout {
            table,
            states,
            factors_len: at,
            scratch_len: scratch,
            items,
            finish,
        })
    }

    /// The states tensor `k` keeps.
    pub(crate) fn names(&self, k: usize) -> Vec<&'static str> {
        self.states[k].iter().map(|s| s.0).collect()
    }

    /// State `name` of tensor `k`: (first element, count).
    fn find(&self, k: usize, name: &str) -> Option<(u64, u64)> {
        self.states[k]
            .iter()
            .find(|s| s.0 == name)
            .map(|s| (s.1, s.2))
    }
}

/// One chunk's bind groups of the two extra passes: its ROWS_COLS pass
/// (chunk, bind group, grid) and the FINISH pass's.
pub(crate) type ChunkBinds = (Option<(usize, wgpu::BindGroup, (u32, u32))>, Option<Bound>);

/// The two extra pipelines (row / column sums, their finish), the states
/// and scratch buffers, and the items' bind groups, built once with the
/// optimizer.
pub(crate) struct Factorize {
    pub(crate) layout: Layout,
    rows_cols: Arc<Kernel>,
    finish: Arc<Kernel>,
    /// The states (binding 8).
    pub(crate) factors: wgpu::Buffer,
    /// Slice means and column pairs (binding 9).
    pub(crate) scratch: wgpu::Buffer,
    /// Per chunk with items: its item table, bind group and grid.
    chunks: Vec<(usize, wgpu::Buffer, Option<Bound>)>,
    finish_items: wgpu::Buffer,
    finish_bind: Option<Bound>,
}

/// A pass's bind group and grid.
type Bound = (wgpu::BindGroup, (u32, u32));

impl Factorize {
    /// Builds the buffers and, with `build`, the two pipelines (`build`
    /// makes one from its extra override constant). Call inside the
    /// optimizer's error scope.
    pub(crate) fn new(
        gpu: &Gpu,
        layout: Layout,
        build: impl Fn((&'static str, f64)) -> Result<Arc<Kernel>>,
    ) -> Result<Factorize> {
        let buffer =
            |label: &str, elems: u64| gpu.create_buffer(label, (elems * 4).max(16), ROLE_USAGE);
        let factors = buffer("optim/adafactor/factors", layout.factors_len);
        let scratch = buffer("optim/adafactor/scratch", layout.scratch_len);
        let table = |label: &str, items: &[Block]| {
            let bytes: &[u8] = bytemuck::cast_slice(items);
            let fill = [0u8; std::mem::size_of::<Block>()];
            gpu.create_buffer_init(
                label,
                if bytes.is_empty() { &fill } else { bytes },
                wgpu::BufferUsages::STORAGE,
            )
        };
        let chunks = layout
            .items
            .iter()
            .map(|(c, items)| {
                let label = format!("optim/adafactor/items/chunk{c}");
                (*c, table(&label, items), None)
            })
            .collect();
        let finish_items = table("optim/adafactor/finish", &layout.finish);
        Ok(Factorize {
            rows_cols: build(ROWS_COLS)?,
            finish: build(FINISH)?,
            layout,
            factors,
            scratch,
            chunks,
            finish_items,
            finish_bind: None,
        })
    }

    /// The bind groups of chunk `c`'s items (bound where the block table
    /// is) with the other bindings of `res`, the apply pass's bindings of
    /// that chunk, and, with `finish`, the FINISH pass's; keep them with
    /// [`set_binds`](Self::set_binds).
    pub(crate) fn bind_chunk(
        &self,
        gpu: &Gpu,
        c: usize,
        res: &[wgpu::BindingResource<'_>],
        finish: bool,
    ) -> ChunkBinds {
        let max_dim = gpu.limits().max_compute_workgroups_per_dimension;
        let with = |items: &wgpu::Buffer, kernel: &Kernel, label: &str| {
            let mut r = res.to_vec();
            r[2] = items.as_entire_binding();
            gpu.create_bind_group(label, &kernel.layout, &r)
        };
        let rows_cols = self
            .chunks
            .iter()
            .zip(&self.layout.items)
            .find(|((x, _, _), _)| *x == c)
            .map(|((_, items, _), (_, v))| {
                let label = format!("optim/adafactor/rows_cols/chunk{c}");
                let bg = with(items, &self.rows_cols, &label);
                (c, bg, grid(v.len() as u32, max_dim))
            });
        let finish = (finish && !self.layout.finish.is_empty()).then(|| {
            let bg = with(&self.finish_items, &self.finish, "optim/adafactor/finish");
            (bg, grid(self.layout.finish.len() as u32, max_dim))
        });
        (rows_cols, finish)
    }

    /// Keeps the bind groups of [`bind_chunk`](Self::bind_chunk) (called
    /// once per chunk; the first FINISH bind group).
    pub(crate) fn set_binds(&mut self, binds: Vec<ChunkBinds>) {
        for (rows_cols, finish) in binds {
            if let Some((c, bg, g)) = rows_cols
                && let Some(slot) = self.chunks.iter_mut().find(|x| x.0 == c)
            {
                slot.2 = Some((bg, g));
            }
            if self.finish_bind.is_none() {
                self.finish_bind = finish;
            }
        }
    }

    /// Records the row / column pass of every chunk, then the FINISH pass.
    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.rows_cols.pipeline);
        for (bg, g) in self.chunks.iter().filter_map(|c| c.2.as_ref()) {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(g.0, g.1, 1);
        }
        if let Some((bg, g)) = &self.finish_bind {
            pass.set_pipeline(&self.finish.pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(g.0, g.1, 1);
        }
    }

    /// The dispatches [`record`](Self::record) makes.
    pub(crate) fn dispatches(&self) -> usize {
        self.chunks.iter().filter(|c| c.2.is_some()).count() + self.finish_bind.is_some() as usize
    }

    /// Switches to rebuilt pipelines (new penalty terms: the same
    /// bindings).
    pub(crate) fn set_kernels(&mut self, (rows_cols, finish): (Arc<Kernel>, Arc<Kernel>)) {
        self.rows_cols = rows_cols;
        self.finish = finish;
    }

    /// Device bytes of the states, scratch and item tables.
    pub(crate) fn device_bytes(&self) -> u64 {
        self.factors.size()
            + self.scratch.size()
            + self.finish_items.size()
            + self.chunks.iter().map(|c| c.1.size()).sum::<u64>()
    }

    fn range(&self, k: usize, name: &str) -> Result<(u64, u64)> {
        self.layout.find(k, name).ok_or_else(|| {
            Error::invalid(
                "state",
                format!("{name:?}"),
                format!("one of {:?}", self.layout.names(k)),
                format!("Adafactor keeps no state named {name:?} for this tensor"),
            )
        })
    }

    /// State `name` of tensor `k`.
    pub(crate) fn read(&self, gpu: &Gpu, k: usize, name: &str) -> Result<Vec<f32>> {
        let (at, n) = self.range(k, name)?;
        let bytes = gpu.read_ranges("optim/adafactor/read", &[(&self.factors, 4 * at, 4 * n)])?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Writes state `name` of tensor `k`.
    ///
    /// # Errors
    /// A length other than the state's (nothing is written then).
    pub(crate) fn write(
        &self,
        gpu: &Gpu,
        (k, tensor): (usize, &str),
        name: &str,
        data: &[f32],
    ) -> Result<()> {
        let (at, n) = self.range(k, name)?;
        if data.len() as u64 != n {
            return Err(Error::mismatch(format!(
                "state `{name}` of `{tensor}` has {n} elements, but {} were given",
                data.len()
            )));
        }
        if n > 0 {
            gpu.scoped("optim/adafactor/write", || {
                gpu.queue()
                    .write_buffer(&self.factors, 4 * at, bytemuck::cast_slice(data))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::{parse, rust_struct, wgsl_struct};
    use crate::optim::trust::segments;

    #[test]
    fn factor_matches_its_wgsl_struct() {
        let a = crate::optim::Algorithm::Adafactor(Default::default());
        let source = a.algo().kernel().assemble(
            crate::optim::Passes::Adafactor,
            Default::default(),
            Default::default(),
        );
        let (module, _) = parse("adafactor", &source);
        assert_eq!(
            wgsl_struct(&module, "Factor"),
            rust_struct!(Factor {
                first,
                count,
                group,
                factored,
                rows,
                cols,
                row_at,
                col_at,
                var_at,
                means_at,
                sqrt_n,
                _pad0
            })
        );
    }

    #[test]
    fn states_and_items_cover_every_row_and_column_once() {
        let layout = ParamLayout::new(&[
            ("v", &[5][..]),
            ("m", &[300, 70][..]),
            ("t", &[2, 3, 5][..]),
            ("e", &[0, 4][..]),
            ("w", &[130, 8][..]),
        ])
        .unwrap();
        let placement = Placement::new(&layout, 1 << 20).unwrap();
        let all = [true; 5];
        let segs = segments(&placement, &[0; 5], &all, 0);
        let l = Layout::new(&layout, &placement, &segs, &all, 1 << 20).unwrap();
        assert_eq!(l.names(0), ["variance"]);
        assert_eq!(l.names(1), ["row_var", "col_var"]);
        assert_eq!(l.find(1, "row_var").unwrap().1, 300);
        assert_eq!(l.find(1, "col_var").unwrap().1, 70);
        assert_eq!(l.find(2, "row_var").unwrap().1, 6, "2 slices x 3 rows");
        assert_eq!(l.find(2, "col_var").unwrap().1, 10);
        assert_eq!(l.factors_len, 5 + 370 + 16 + 4 + 138);
        // Every row of every slice once; every (slice, column) in exactly
        // one finish item; the column items cover each (slice, row, column)
        // once.
        let items: Vec<Block> = l.items.iter().flat_map(|(_, v)| v.clone()).collect();
        // `m`'s rows (70 elements, not a multiple of 4) 3 per item, `t`'s
        // (5) 51 per item, both slices in one; `w`'s (8 elements) 128 per
        // item.
        let rows: u32 = items
            .iter()
            .filter(|b| matches!(b.local, 0 | 4 | 6))
            .map(|b| if b.local == 0 { 1 } else { b.index })
            .sum();
        assert_eq!(rows, 300 + 6 + 130);
        assert_eq!(items.iter().filter(|b| b.local == 4).count(), 2);
        assert!(
            items
                .iter()
                .filter(|b| b.local == 4)
                .all(|b| b.len == b.index * 8)
        );
        let covered: u64 = items
            .iter()
            .filter(|b| b.local == 1 || b.local == 5)
            .map(|b| b.len as u64 * b.index as u64)
            .sum();
        assert_eq!(covered, 300 * 70 + 130 * 8);
        // `t` (3 rows a slice) takes a thread per (slice, column): 10 pairs
        // in one item, and one thread per slice for its mean.
        let short: Vec<&Block> = items.iter().filter(|b| b.local == 7).collect();
        assert_eq!(short.len(), 1);
        assert_eq!((short[0].len, short[0].index), (10, 0));
        let finish_cols: u32 = l
            .finish
            .iter()
            .filter(|b| b.local == 2)
            .map(|b| b.len)
            .sum();
        assert_eq!(finish_cols, 70 + 8);
        assert_eq!(l.finish.iter().filter(|b| b.local == 3).count(), 1 + 1);
        assert_eq!(l.finish.iter().filter(|b| b.local == 8).count(), 1);
        assert_eq!(state_shape(&[2, 3, 5], "row_var"), [2, 3, 1]);
        assert_eq!(state_shape(&[2, 3, 5], "col_var"), [2, 1, 5]);
        // A factored tensor cut across chunks is refused, naming it.
        let small = Placement::new(&layout, 1024).unwrap();
        let segs = segments(&small, &[0; 5], &all, 0);
        let err = Layout::new(&layout, &small, &segs, &all, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`m`") && err.contains("with_chunk_elems"),
            "{err}"
        );
    }

    /// Replays the work items as the WGSL reads and writes them: every
    /// (slice, row) slot of row_var written once and its row's elements
    /// read; every (slice, row, column) element read once by a column item;
    /// every scratch sum written once by a column item and read by its
    /// finish item; every col_var slot written once; vec4 kinds aligned.
    #[test]
    fn work_items_read_and_write_every_slot_exactly_once() {
        let layout = ParamLayout::new(&[
            ("v", &[5][..]),
            ("odd", &[300, 70][..]),
            ("w8", &[300, 8][..]),
            ("w768", &[3, 768][..]),
            ("w2052", &[2, 2052][..]),
            ("b12", &[2, 260, 12][..]),
            ("e", &[0, 4][..]),
            ("conv", &[4, 6, 3, 3][..]),
            ("w200", &[3, 201][..]),
        ])
        .unwrap();
        let placement = Placement::new(&layout, 1 << 20).unwrap();
        let all = [true; 9];
        let segs = segments(&placement, &[0; 9], &all, 0);
        let l = Layout::new(&layout, &placement, &segs, &all, 1 << 20).unwrap();
        let mut row_var = vec![0u32; l.factors_len as usize];
        let mut col_var = vec![0u32; l.factors_len as usize];
        let mut sums_written = vec![0u32; l.scratch_len as usize];
        let mut sums_read = vec![0u32; l.scratch_len as usize];
        let mut means = vec![0u32; l.scratch_len as usize];
        let total: u64 = placement.chunk_lens().iter().sum();
        let mut by_rows = vec![0u32; total as usize];
        let mut by_cols = vec![0u32; total as usize];
        for b in l.items.iter().flat_map(|(_, v)| v) {
            let f = l.table[b.tensor as usize];
            let (start, len, index, state) = (b.start, b.len, b.index, b.state);
            match b.local {
                0 => {
                    row_var[state as usize] += 1;
                    for e in start..start + len {
                        by_rows[e as usize] += 1;
                    }
                }
                4 | 6 => {
                    if b.local == 4 {
                        assert_eq!(start % 4, 0);
                    }
                    assert_eq!(len, index * f.cols);
                    for r in 0..index {
                        row_var[(state + r) as usize] += 1;
                    }
                    for e in start..start + len {
                        by_rows[e as usize] += 1;
                    }
                }
                7 => {
                    for q in 0..len {
                        let p = index + q;
                        let (bb, c) = (p / f.cols, p % f.cols);
                        col_var[(state + q) as usize] += 1;
                        for r in 0..f.rows {
                            let e = start + bb * f.rows * f.cols + r * f.cols + c;
                            by_cols[e as usize] += 1;
                        }
                    }
                }
                1 | 5 => {
                    if b.local == 5 {
                        assert_eq!(start % 4, 0);
                    }
                    for c in 0..len {
                        sums_written[(state + c) as usize] += 1;
                        for r in 0..index {
                            by_cols[(start + r * f.cols + c) as usize] += 1;
                        }
                    }
                }
                k => panic!("kind {k} in the ROWS_COLS table"),
            }
        }
        for b in &l.finish {
            let f = l.table[b.tensor as usize];
            match b.local {
                2 => {
                    for c in 0..b.len {
                        col_var[(b.state + c) as usize] += 1;
                        for q in 0..b.index {
                            sums_read[(b.start + q * f.cols + c) as usize] += 1;
                        }
                    }
                }
                3 => means[b.start as usize] += 1,
                8 => {
                    for q in 0..b.len {
                        means[(b.start + q) as usize] += 1;
                    }
                }
                k => panic!("kind {k} in the FINISH table"),
            }
        }
        for (k, t) in layout.tensors().iter().enumerate() {
            let f = l.table[k];
            if f.factored == 0 {
                continue;
            }
            let batch = t.numel / (f.rows as u64 * f.cols as u64);
            let piece = placement.pieces(k)[0];
            for e in piece.chunk_offset..piece.chunk_offset + t.numel {
                assert_eq!(by_rows[e as usize], 1, "`{}` element {e} in rows", t.name);
                assert_eq!(
                    by_cols[e as usize], 1,
                    "`{}` element {e} in columns",
                    t.name
                );
            }
            for i in 0..batch * f.rows as u64 {
                assert_eq!(row_var[(f.row_at as u64 + i) as usize], 1, "`{}`", t.name);
            }
            for i in 0..batch * f.cols as u64 {
                assert_eq!(col_var[(f.col_at as u64 + i) as usize], 1, "`{}`", t.name);
            }
            for b in 0..batch {
                assert_eq!(means[(f.means_at as u64 + b) as usize], 1, "`{}`", t.name);
            }
        }
        // Every scratch sum is written by one column item and read by one
        // finish item (slice means are the other scratch slots).
        for (i, (&w, &r)) in sums_written.iter().zip(&sums_read).enumerate() {
            assert_eq!(w, r, "scratch {i}");
            assert!(w <= 1 && (w == 1 || means[i] == 1), "scratch {i}");
        }
        // The kinds this layout must produce.
        let kinds: Vec<u32> = l
            .items
            .iter()
            .flat_map(|(_, v)| v)
            .map(|b| b.local)
            .collect();
        for k in [0, 1, 4, 5, 6, 7] {
            assert!(kinds.contains(&k), "kind {k}");
        }
        for k in [2, 3, 8] {
            assert!(l.finish.iter().any(|b| b.local == k), "finish kind {k}");
        }
    }
}
