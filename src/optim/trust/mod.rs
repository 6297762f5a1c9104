//! Per-tensor trust ratios inside the step (LAMB, LARS): the one home of
//! the optimizers whose update is scaled per tensor by a ratio of norms.
//!
//! Such an optimizer implements [`Trust`] (its three element functions, the
//! f64 twins of `direction`, `trust_ratio` and `apply` in its
//! `update.wgsl`) and returns it from `Algo::trust`. The runtime then builds
//! three pipelines of one module (`passes.wgsl`: measure, reduce, apply)
//! instead of the one-pass kernel, and records `2 x chunks + 1` dispatches a
//! step, in the same compute pass and submit, with no readback: the number
//! of dispatches does not grow with the number of tensors. The reduction
//! order is fixed (no float atomics), so steps are bitwise reproducible.

use crate::error::Result;
use crate::gpu::{Gpu, Kernel, Slot, grid};
use crate::layout::Placement;
use crate::optim::blocks::BLOCK_ELEMS;

/// The f64 reference of a trust-ratio optimizer, per element and per tensor
/// (`crate::optim::reference` runs it over each tensor).
pub(crate) trait Trust {
    /// The update direction `u` of one element at step `t`, from its param
    /// and processed gradient; writes the states that come before the ratio
    /// (`st` in the order of `KernelDesc::active`). Returns `(p, u)`: the
    /// param value the ratio measures and `u`.
    fn direction(&self, t: f64, p: f64, g: f64, st: &mut [f64]) -> (f64, f64);
    /// The tensor's ratio from the L2 norms of its `p` and `u`.
    fn ratio(&self, p_norm: f64, u_norm: f64) -> f64;
    /// The update of one element with its tensor's `ratio` (after
    /// `direction` ran on every element of the tensor).
    fn apply(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64], ratio: f64);
    /// The 4-byte element accesses per param of one step, both passes
    /// (LAMB: 6 in measure, 4 in apply), for benchmark rooflines.
    fn accesses_per_param(&self) -> u64;
}

/// One tensor's blocks in the trust buffer: `trust[first .. first + count]`.
/// Matches WGSL `struct Segment` (`passes.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Segment {
    pub(crate) first: u32,
    pub(crate) count: u32,
    pub(crate) group: u32,
    _pad0: u32,
}

/// The block index range of every tensor, in layout order, for block
/// tables numbered from `first` over the tensors marked in `included` (a
/// tensor not included has an empty range). Blocks are numbered chunk by
/// chunk and, inside a chunk, tensor by tensor (`blocks::block_tables`),
/// so a tensor that straddles chunks (the last of one, the first of the
/// next) still has consecutive indices.
pub(crate) fn segments(
    placement: &Placement,
    assignment: &[usize],
    included: &[bool],
    first: u32,
) -> Vec<Segment> {
    let mut segs: Vec<Option<Segment>> = vec![None; assignment.len()];
    let mut next = first;
    for c in 0..placement.chunk_lens().len() {
        for (k, &group) in assignment.iter().enumerate() {
            if !included[k] {
                continue;
            }
            for p in placement.pieces(k).iter().filter(|p| p.chunk == c) {
                let n = p.len.div_ceil(BLOCK_ELEMS) as u32;
                let s = segs[k].get_or_insert(Segment {
                    first: next,
                    count: 0,
                    group: group as u32,
                    _pad0: 0,
                });
                debug_assert_eq!(s.first + s.count, next, "a tensor's blocks are consecutive");
                s.count += n;
                next += n;
            }
        }
    }
    segs.into_iter()
        .zip(assignment)
        .map(|(s, &group)| {
            s.unwrap_or(Segment {
                first: 0,
                count: 0,
                group: group as u32,
                _pad0: 0,
            })
        })
        .collect()
}

/// The measure and reduce pipelines of a trust-ratio optimizer and their
/// buffers, built once with the optimizer (the apply pipeline is the
/// optimizer's own kernel).
pub(crate) struct TrustPasses {
    pub(crate) measure: std::sync::Arc<Kernel>,
    pub(crate) reduce: std::sync::Arc<Kernel>,
    /// One vec4 per block of all chunks.
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) tensors: wgpu::Buffer,
    pub(crate) n_tensors: u32,
}

/// The entry points of the three passes, appended after the generated roles.
pub(crate) const PASSES_WGSL: &str =
    concat!(include_str!("reduce.wgsl"), include_str!("passes.wgsl"));

/// The override that selects each pass (both false: apply).
pub(crate) const MEASURE: (&str, f64) = ("MEASURE", 1.0);
pub(crate) const REDUCE: (&str, f64) = ("REDUCE", 1.0);

impl TrustPasses {
    /// Builds the two extra pipelines (`build` makes one from its extra
    /// override constant) and the buffers; `table` is the bytes of the
    /// per-tensor table of binding 7 ([`segments`], or Muon's matrices) and
    /// its length. Call inside the optimizer's error scope.
    pub(crate) fn new(
        gpu: &Gpu,
        name: &str,
        (table, n_tensors): (&[u8], u32),
        n_blocks: u32,
        build: impl Fn((&'static str, f64)) -> Result<std::sync::Arc<Kernel>>,
    ) -> Result<TrustPasses> {
        Ok(TrustPasses {
            measure: build(MEASURE)?,
            reduce: build(REDUCE)?,
            buffer: gpu.create_buffer(
                &format!("optim/{name}/trust"),
                16 * n_blocks.max(1) as u64,
                wgpu::BufferUsages::STORAGE,
            ),
            tensors: gpu.create_buffer_init(
                &format!("optim/{name}/tensors"),
                table,
                wgpu::BufferUsages::STORAGE,
            ),
            n_tensors,
        })
    }

    /// The bindings 6 and 7 of every pass.
    pub(crate) fn bindings(&self) -> [wgpu::BindingResource<'_>; 2] {
        [
            self.buffer.as_entire_binding(),
            self.tensors.as_entire_binding(),
        ]
    }

    /// The reduce pass's grid: one workgroup per tensor.
    pub(crate) fn reduce_grid(&self, max_dim: u32) -> (u32, u32) {
        grid(self.n_tensors, max_dim)
    }
}

/// The binding kinds 6 and 7 (`trust`, `tensors`).
pub(crate) const SLOTS: [Slot; 2] = [Slot::StorageReadWrite, Slot::StorageRead];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::{parse, rust_struct, wgsl_struct};
    use crate::layout::ParamLayout;
    use crate::optim::Dispatch;
    use crate::optim::blocks::block_tables;
    use crate::optim::blocks::tests::f32_states;
    use crate::optim::state::StateDtype;

    #[test]
    fn segment_matches_its_wgsl_struct() {
        let lamb = crate::optim::Algorithm::Lamb(Default::default());
        let source = lamb.algo().kernel().assemble(
            crate::optim::Passes::Trust,
            StateDtype::F32,
            Default::default(),
        );
        let (module, _) = parse("lamb", &source);
        assert_eq!(
            wgsl_struct(&module, "Segment"),
            rust_struct!(Segment {
                first,
                count,
                group,
                _pad0
            })
        );
    }

    #[test]
    fn segments_match_the_block_numbering_across_chunks() {
        let layout = ParamLayout::new(&[
            ("a", &[0][..]),
            ("b", &[2500][..]),
            ("c", &[3][..]),
            ("d", &[1100][..]),
        ])
        .unwrap();
        let placement = Placement::new(&layout, 1024).unwrap();
        let assignment = [0, 1, 0, 1];
        let all = [true; 4];
        let segs = segments(&placement, &assignment, &all, 0);
        for mode in [Dispatch::Fused, Dispatch::PerTensor] {
            let states = f32_states(&layout, &placement, 2);
            let (tables, n) = block_tables(&placement, &states, &assignment, mode, 0);
            assert_eq!(segs.iter().map(|s| s.count).sum::<u32>(), n);
            for (k, s) in segs.iter().enumerate() {
                let mut covered = 0;
                for (c, _, blocks) in &tables {
                    let mine = blocks
                        .iter()
                        .filter(|b| b.index >= s.first && b.index < s.first + s.count);
                    for b in mine {
                        // Each block of the range lies inside a piece of tensor k.
                        let inside = placement.pieces(k).iter().any(|p| {
                            p.chunk == *c
                                && p.chunk_offset <= b.start as u64
                                && b.start as u64 + b.len as u64 <= p.chunk_offset + p.len
                        });
                        assert!(inside, "tensor {k}: block {b:?} of chunk {c}");
                        covered += b.len as u64;
                    }
                }
                assert_eq!(covered, layout.tensors()[k].numel, "tensor {k}");
                assert_eq!(s.group, assignment[k] as u32);
            }
        }
        assert_eq!(segs[0].count, 0);
        assert!(placement.pieces(1).len() > 1, "b straddles chunks");
    }

    /// A part of a mixed optimizer (`ParamGroup::algorithm`): only its
    /// tensors, numbered after the blocks of the parts before it.
    #[test]
    fn segments_of_a_part_match_its_block_tables() {
        let layout = ParamLayout::new(&[
            ("a", &[700][..]),
            ("b", &[2500][..]),
            ("c", &[3][..]),
            ("d", &[1100][..]),
        ])
        .unwrap();
        let placement = Placement::new(&layout, 1024).unwrap();
        let assignment = [0, 1, 0, 1];
        let included = [false, true, false, true];
        let numels: Vec<u64> = layout.tensors().iter().map(|t| t.numel).collect();
        let states = crate::optim::state::StatePlacement::of_tensors(
            &placement,
            &numels,
            &assignment,
            &[StateDtype::F32; 2],
            0,
            &included,
        );
        let segs = segments(&placement, &assignment, &included, 17);
        let (tables, n) = block_tables(&placement, &states, &assignment, Dispatch::Fused, 17);
        let pieces_blocks = |k: usize| -> u32 {
            let p = placement.pieces(k);
            p.iter().map(|p| p.len.div_ceil(BLOCK_ELEMS) as u32).sum()
        };
        assert_eq!(
            n,
            pieces_blocks(1) + pieces_blocks(3),
            "b and d; a and c have none"
        );
        for (k, s) in segs.iter().enumerate() {
            let mut mine: Vec<u32> = tables
                .iter()
                .flat_map(|t| t.2.iter())
                .filter(|b| b.tensor == k as u32)
                .map(|b| b.index)
                .collect();
            mine.sort();
            let expected: Vec<u32> = (s.first..s.first + s.count).collect();
            assert_eq!(mine, expected, "tensor {k}");
            assert_eq!(s.count > 0, included[k], "tensor {k}");
        }
        assert_eq!(segs[1].first, 17);
        // Excluded tensors take no state space.
        let len: u64 = states.lens.values().sum();
        assert!(len < 2500 + 1100 + 2 * 64, "{len}");
    }
}
