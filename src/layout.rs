//! Named tensors placed in flat, chunked buffers.
//!
//! A [`ParamLayout`] lists the model's tensors by name and shape. Every role
//! (params, grads, each optimizer state) uses the same placement: tensor `k`
//! starts at element `offset(k)` of one flat element space, aligned to 64
//! elements (256 bytes, the portable storage-offset alignment) so a user
//! kernel can bind a tensor's region directly. The flat space is cut into
//! chunks of at most `max_storage_buffer_binding_size` bytes, one wgpu buffer
//! per chunk and role; a tensor may straddle a chunk boundary, and is then
//! made of several [`TensorPiece`]s.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Alignment of every tensor's first element, in f32 elements (256 bytes).
pub const TENSOR_ALIGN_ELEMS: u64 = 64;

/// One tensor of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, unique in the layout.
    pub name: String,
    /// Its shape; may contain zeros.
    pub shape: Vec<usize>,
    /// Number of elements (product of the shape).
    pub numel: u64,
    /// First element in the flat element space (a multiple of 64).
    pub offset: u64,
}

/// An ordered list of named tensors and their places in the flat space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamLayout {
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    total: u64,
}

/// Most elements one tensor, or a whole layout, may hold (2^60): 4 bytes
/// each in every role must fit in u64 with room for offsets.
pub const MAX_ELEMS: u64 = 1 << 60;

impl ParamLayout {
    /// Builds a layout from `(name, shape)` pairs, in order.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the tensor for a duplicated name, an
    /// empty name or one that safetensors reserves (`__metadata__`), or an
    /// element count (of the tensor or of the whole layout) at or above
    /// [`MAX_ELEMS`] (2^60: its bytes in every role must fit in u64).
    pub fn new<S: AsRef<str>>(tensors: &[(S, &[usize])]) -> Result<ParamLayout> {
        let mut out = Vec::with_capacity(tensors.len());
        let mut index = HashMap::new();
        let mut at: u64 = 0;
        for (name, shape) in tensors {
            let name = name.as_ref().to_string();
            if name.is_empty() || name == "__metadata__" {
                return Err(Error::invalid(
                    "name",
                    format!("{name:?}"),
                    "a non-empty name other than `__metadata__` (reserved by safetensors)",
                    format!("tensor name {name:?} cannot be used"),
                ));
            }
            let numel = shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                .filter(|&n| n < MAX_ELEMS)
                .ok_or_else(|| {
                    Error::invalid(
                        format!("shape of `{name}`"),
                        format!("{shape:?}"),
                        "a shape of fewer than 2^60 elements",
                        format!("tensor `{name}` is too large"),
                    )
                })?;
            if index.insert(name.clone(), out.len()).is_some() {
                return Err(Error::invalid(
                    "name",
                    format!("{name:?}"),
                    "names unique within a layout",
                    format!("tensor name `{name}` appears more than once"),
                ));
            }
            let next = numel
                .checked_next_multiple_of(TENSOR_ALIGN_ELEMS)
                .and_then(|n| at.checked_add(n))
                .filter(|&n| n < MAX_ELEMS)
                .ok_or_else(|| {
                    Error::invalid(
                        "layout",
                        format!("`{name}` at element {at}"),
                        "a layout of fewer than 2^60 elements in all",
                        format!("the layout overflows at tensor `{name}`"),
                    )
                })?;
            out.push(TensorInfo {
                name,
                shape: shape.to_vec(),
                numel,
                offset: at,
            });
            at = next;
        }
        Ok(ParamLayout {
            tensors: out,
            index,
            total: at,
        })
    }

    /// The tensors, in order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    /// True when the layout has no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    /// Elements of all tensors, without alignment padding.
    pub fn numel(&self) -> u64 {
        self.tensors.iter().map(|t| t.numel).sum()
    }
    /// Length of the flat element space, padding included.
    pub fn padded_len(&self) -> u64 {
        self.total
    }
    /// The index of tensor `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTensor`] listing a few known names.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.index.get(name).copied().ok_or_else(|| {
            let mut known: Vec<&str> = self
                .tensors
                .iter()
                .map(|t| t.name.as_str())
                .take(8)
                .collect();
            if self.tensors.len() > 8 {
                known.push("...");
            }
            Error::UnknownTensor {
                name: name.to_string(),
                known: format!("{} tensors: {}", self.tensors.len(), known.join(", ")),
            }
        })
    }
    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Result<&TensorInfo> {
        Ok(&self.tensors[self.index_of(name)?])
    }
}

/// A contiguous part of a tensor inside one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorPiece {
    /// Which chunk (index into a role's buffers).
    pub chunk: usize,
    /// First element inside that chunk's buffer (byte offset = 4 * this).
    pub chunk_offset: u64,
    /// Number of elements.
    pub len: u64,
    /// Index of the piece's first element inside the tensor.
    pub tensor_offset: u64,
}

/// How a layout's flat space is cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    chunk_elems: u64,
    chunk_lens: Vec<u64>,
    pieces: Vec<Vec<TensorPiece>>,
}

impl Placement {
    /// Cuts `layout` into chunks of `chunk_elems` elements (a multiple of 64).
    pub fn new(layout: &ParamLayout, chunk_elems: u64) -> Result<Placement> {
        if chunk_elems == 0 || !chunk_elems.is_multiple_of(TENSOR_ALIGN_ELEMS) {
            return Err(Error::invalid(
                "chunk_elems",
                chunk_elems,
                "a positive multiple of 64",
                "chunk size must keep tensor offsets 256-byte aligned",
            ));
        }
        let total = layout.padded_len();
        let n = total.div_ceil(chunk_elems);
        let chunk_lens = (0..n)
            .map(|c| (total - c * chunk_elems).min(chunk_elems))
            .collect();
        let pieces = layout
            .tensors()
            .iter()
            .map(|t| {
                let mut v = Vec::new();
                let mut done = 0;
                while done < t.numel {
                    let e = t.offset + done;
                    let chunk = e / chunk_elems;
                    let chunk_offset = e % chunk_elems;
                    let len = (t.numel - done).min(chunk_elems - chunk_offset);
                    v.push(TensorPiece {
                        chunk: chunk as usize,
                        chunk_offset,
                        len,
                        tensor_offset: done,
                    });
                    done += len;
                }
                v
            })
            .collect();
        Ok(Placement {
            chunk_elems,
            chunk_lens,
            pieces,
        })
    }
    /// Elements per chunk (the last may be shorter).
    pub fn chunk_elems(&self) -> u64 {
        self.chunk_elems
    }
    /// The length of each chunk, in elements.
    pub fn chunk_lens(&self) -> &[u64] {
        &self.chunk_lens
    }
    /// The pieces of tensor `k`.
    pub fn pieces(&self, k: usize) -> &[TensorPiece] {
        &self.pieces[k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_are_aligned_and_straddle_chunks() {
        let l = ParamLayout::new(&[("a", &[3][..]), ("b", &[0][..]), ("c", &[100][..])]).unwrap();
        assert_eq!(l.tensors()[0].offset, 0);
        assert_eq!(l.tensors()[1].offset, 64);
        assert_eq!(l.tensors()[2].offset, 64);
        assert_eq!(l.padded_len(), 64 + 128);
        let p = Placement::new(&l, 128).unwrap();
        assert_eq!(p.chunk_lens(), &[128, 64]);
        assert!(p.pieces(1).is_empty());
        assert_eq!(
            p.pieces(2),
            &[
                TensorPiece {
                    chunk: 0,
                    chunk_offset: 64,
                    len: 64,
                    tensor_offset: 0
                },
                TensorPiece {
                    chunk: 1,
                    chunk_offset: 0,
                    len: 36,
                    tensor_offset: 64
                },
            ]
        );
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let e = ParamLayout::new(&[("a", &[3][..]), ("a", &[1][..])]).unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    /// Issue 15: `[usize::MAX]` used to wrap to length 0 and a later tensor
    /// then overlapped it.
    #[test]
    fn huge_shapes_are_an_error_naming_the_tensor_not_a_wrap() {
        for shape in [
            vec![usize::MAX],
            vec![1 << 31, 1 << 31],
            vec![(1 << 60) - 1],
        ] {
            let e = ParamLayout::new(&[("ok", &[3][..]), ("huge", &shape[..])]).unwrap_err();
            assert!(e.to_string().contains("`huge`"), "{shape:?}: {e}");
        }
        let half = [1usize << 59];
        let e = ParamLayout::new(&[("a", &half[..]), ("b", &half[..])]).unwrap_err();
        assert!(e.to_string().contains("`b`"), "{e}");
    }

    /// Issue 15: a tensor named `__metadata__` made `export_params` write a
    /// file safetensors cannot read.
    #[test]
    fn reserved_and_empty_names_are_refused() {
        for name in ["__metadata__", ""] {
            let e = ParamLayout::new(&[(name, &[3][..])]).unwrap_err();
            assert!(e.to_string().contains("cannot be used"), "{name:?}: {e}");
        }
    }

    #[test]
    fn bad_chunk_sizes_are_rejected() {
        let l = ParamLayout::new(&[("a", &[3][..])]).unwrap();
        assert!(Placement::new(&l, 0).is_err());
        assert!(Placement::new(&l, 100).is_err());
    }
}
