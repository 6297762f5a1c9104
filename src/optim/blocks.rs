//! The block table: every tensor piece cut into blocks of at most
//! [`BLOCK_ELEMS`] elements, one workgroup each, so one dispatch per chunk
//! covers every tensor and param group (PyTorch's multi-tensor apply, done
//! with bindings). Blocks never cross tensors, so each has one group.

use crate::gpu::WORKGROUP_SIZE;
use crate::layout::Placement;

/// Elements one workgroup updates: 256 invocations x 4 elements.
pub const BLOCK_ELEMS: u64 = WORKGROUP_SIZE as u64 * 4;

/// A work item of the kernels: `len` (<= 1024) elements from `start` of one
/// chunk, all in param group `group`. Matches WGSL `struct Block`
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

/// The block tables of a placement, `(chunk, blocks)` in dispatch order:
/// one per chunk when fused, one per tensor piece otherwise; and the number
/// of blocks over all of them.
pub(crate) fn block_tables(
    placement: &Placement,
    assignment: &[usize],
    mode: Dispatch,
) -> (Vec<(usize, Vec<Block>)>, u32) {
    let mut all = Vec::new();
    let mut next_index = 0u32;
    for c in 0..placement.chunk_lens().len() {
        let mut tables: Vec<Vec<Block>> = vec![Vec::new()];
        for (k, group) in assignment.iter().enumerate() {
            for p in placement.pieces(k).iter().filter(|p| p.chunk == c) {
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
                    });
                    next_index += 1;
                    s += len;
                }
            }
        }
        all.extend(tables.into_iter().filter(|t| !t.is_empty()).map(|t| (c, t)));
    }
    (all, next_index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::{assert_common_struct, rust_struct};
    use crate::layout::ParamLayout;

    #[test]
    fn block_matches_its_wgsl_struct() {
        assert_common_struct(
            "Block",
            rust_struct!(Block {
                start,
                len,
                group,
                index
            }),
        );
    }

    #[test]
    fn blocks_cover_every_element_once_and_never_cross_tensors() {
        let layout =
            ParamLayout::new(&[("a", &[0][..]), ("b", &[1500][..]), ("c", &[3][..])]).unwrap();
        let placement = Placement::new(&layout, 1024).unwrap();
        let (tables, n) = block_tables(&placement, &[0, 1, 2], Dispatch::Fused);
        let blocks: Vec<Block> = tables.iter().flat_map(|t| t.1.clone()).collect();
        assert_eq!(blocks.len() as u32, n);
        assert_eq!(blocks.iter().map(|b| b.len as u64).sum::<u64>(), 1503);
        assert!(blocks.iter().all(|b| b.start % 4 == 0), "vec4-aligned");
        assert!(
            blocks
                .iter()
                .all(|b| b.len as u64 <= BLOCK_ELEMS && b.len > 0)
        );
        assert_eq!(tables.len(), placement.chunk_lens().len());
        let per = block_tables(&placement, &[0, 1, 2], Dispatch::PerTensor).0;
        let pieces: usize = (0..3)
            .map(|k| placement.pieces(k).iter().filter(|p| p.len > 0).count())
            .sum();
        assert_eq!(per.len(), pieces);
    }
}
