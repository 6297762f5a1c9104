//! The block table: every tensor piece cut into blocks of at most
//! [`BLOCK_ELEMS`] elements, one workgroup each, so one dispatch per chunk
//! covers every tensor and param group (PyTorch's multi-tensor apply, done
//! with bindings). Blocks never cross tensors, so each has one group. A
//! chunk whose tensors keep states in several formats (`optim::state`) gets
//! one table per format, each dispatched with that format's kernel.

use crate::gpu::WORKGROUP_SIZE;
use crate::layout::Placement;
use crate::optim::state::{StateDtype, StatePlacement};

/// Elements one workgroup updates: 256 invocations x 4 elements.
pub const BLOCK_ELEMS: u64 = WORKGROUP_SIZE as u64 * 4;

/// A work item of the kernels: `len` (<= 1024) elements from `start` of one
/// chunk, all in param group `group`, whose states start at element
/// `state` of the chunk's state buffers of their format. Matches WGSL `struct Block`
/// (`gpu/common.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Block {
    /// First element inside the chunk.
    pub(crate) start: u32,
    /// Number of elements, at most [`BLOCK_ELEMS`].
    pub(crate) len: u32,
    /// Param group index.
    pub(crate) group: u32,
    /// Index of this block among all blocks of all chunks (its slot in the
    /// gradient pipeline's partial-norm buffer).
    pub(crate) index: u32,
    /// First element in the chunk's state buffers of the tensor's format.
    pub(crate) state: u32,
    /// The tensor's index in the layout.
    pub(crate) tensor: u32,
    /// The block's first element inside its tensor.
    pub(crate) local: u32,
}

/// How [`Optimizer::step`](crate::Optimizer::step) covers the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatch {
    /// One dispatch per chunk for all tensors (the default).
    #[default]
    Fused,
    /// One dispatch per tensor piece, as an unfused optimizer would do;
    /// numerically identical, kept as the baseline of benchmarks.
    PerTensor,
}

/// One block table: the chunk, the states' format, the blocks.
pub(crate) type Table = (usize, StateDtype, Vec<Block>);

/// The block tables of the tensors `states` includes, in dispatch order:
/// one per chunk and state format when fused, one per tensor piece
/// otherwise; and the number of blocks over all of them. Blocks are
/// numbered from `first` chunk by chunk and, in a chunk, tensor by tensor
/// (with one state format, in table order).
pub(crate) fn block_tables(
    placement: &Placement,
    states: &StatePlacement,
    assignment: &[usize],
    mode: Dispatch,
    first: u32,
) -> (Vec<Table>, u32) {
    let mut all = Vec::new();
    let mut next_index = first;
    for c in 0..placement.chunk_lens().len() {
        for d in states.formats() {
            let mut tables: Vec<Vec<Block>> = vec![Vec::new()];
            for (k, group) in assignment.iter().enumerate() {
                if states.dtypes[k] != d || !states.included[k] {
                    continue;
                }
                for (j, p) in placement.pieces(k).iter().enumerate() {
                    if p.chunk != c {
                        continue;
                    }
                    let state_at = states.offsets[k][j];
                    if mode == Dispatch::PerTensor {
                        tables.push(Vec::new());
                    }
                    let blocks = tables.last_mut().expect("tables starts non-empty");
                    let mut s = 0;
                    while s < p.len {
                        let len = (p.len - s).min(BLOCK_ELEMS);
                        // The kernels load vec4s: every block starts on a
                        // multiple of 4 (pieces start on 64-element boundaries).
                        debug_assert_eq!((p.chunk_offset + s) % 4, 0);
                        blocks.push(Block {
                            start: (p.chunk_offset + s) as u32,
                            len: len as u32,
                            group: *group as u32,
                            index: next_index,
                            state: (state_at + s) as u32,
                            tensor: k as u32,
                            local: (p.tensor_offset + s) as u32,
                        });
                        next_index += 1;
                        s += len;
                    }
                }
            }
            all.extend(
                tables
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| (c, d, t)),
            );
        }
    }
    (all, next_index - first)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::layout_check::{assert_common_struct, rust_struct};
    use crate::layout::ParamLayout;

    /// f32 states for every tensor, `n` groups.
    pub(crate) fn f32_states(
        layout: &ParamLayout,
        placement: &Placement,
        n: usize,
    ) -> StatePlacement {
        let numels: Vec<u64> = layout.tensors().iter().map(|t| t.numel).collect();
        let assignment: Vec<usize> = (0..layout.len()).map(|k| k.min(n - 1)).collect();
        StatePlacement::new(
            placement,
            &numels,
            &assignment,
            &vec![StateDtype::F32; n],
            0,
        )
    }

    #[test]
    fn block_matches_its_wgsl_struct() {
        assert_common_struct(
            "Block",
            rust_struct!(Block {
                start,
                len,
                group,
                index,
                state,
                tensor,
                local
            }),
        );
    }

    #[test]
    fn blocks_cover_every_element_once_and_never_cross_tensors() {
        let layout =
            ParamLayout::new(&[("a", &[0][..]), ("b", &[1500][..]), ("c", &[3][..])]).unwrap();
        let placement = Placement::new(&layout, 1024).unwrap();
        let states = f32_states(&layout, &placement, 3);
        let (tables, n) = block_tables(&placement, &states, &[0, 1, 2], Dispatch::Fused, 0);
        let blocks: Vec<Block> = tables.iter().flat_map(|t| t.2.clone()).collect();
        assert!(
            blocks.iter().all(|b| b.state == b.start),
            "f32 states sit with the params"
        );
        assert_eq!(blocks.len() as u32, n);
        assert_eq!(blocks.iter().map(|b| b.len as u64).sum::<u64>(), 1503);
        assert!(blocks.iter().all(|b| b.start % 4 == 0), "vec4-aligned");
        assert!(
            blocks
                .iter()
                .all(|b| b.len as u64 <= BLOCK_ELEMS && b.len > 0)
        );
        assert_eq!(tables.len(), placement.chunk_lens().len());
        let per = block_tables(&placement, &states, &[0, 1, 2], Dispatch::PerTensor, 0).0;
        let pieces: usize = (0..3)
            .map(|k| placement.pieces(k).iter().filter(|p| p.len > 0).count())
            .sum();
        assert_eq!(per.len(), pieces);
    }
}
