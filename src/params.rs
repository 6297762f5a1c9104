//! [`ParamSet`]: the parameters and gradients of a layout on one device.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, next_id};
use crate::layout::{ParamLayout, Placement, TensorPiece};
use crate::precision::ParamDtype;

/// One role (params, grads, a master copy, a snapshot): a buffer per chunk,
/// its elements in `dtype`.
#[derive(Debug)]
pub(crate) struct Role {
    pub(crate) buffers: Vec<wgpu::Buffer>,
    pub(crate) dtype: ParamDtype,
}

pub(crate) const ROLE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Role {
    /// Allocates one f32 buffer per chunk, filled with `init` (zero-filled
    /// when 0).
    pub(crate) fn new(gpu: &Gpu, label: &str, placement: &Placement, init: f32) -> Role {
        let role = Role::zeroed(gpu, label, placement, ParamDtype::F32);
        if init != 0.0 {
            for (buf, &len) in role.buffers.iter().zip(placement.chunk_lens()) {
                let data = vec![init; len as usize];
                gpu.queue()
                    .write_buffer(buf, 0, bytemuck::cast_slice(&data));
            }
        }
        role
    }

    /// Allocates one zero-filled buffer per chunk with elements in `dtype`
    /// (a 16-bit chunk's bytes rounded up to a multiple of 4: chunks hold
    /// a multiple of 64 elements, so it already is).
    pub(crate) fn zeroed(gpu: &Gpu, label: &str, placement: &Placement, dtype: ParamDtype) -> Role {
        let buffers = placement
            .chunk_lens()
            .iter()
            .enumerate()
            .map(|(c, &len)| {
                let bytes = (len * dtype.bytes()).next_multiple_of(4);
                gpu.create_buffer(&format!("{label}/chunk{c}"), bytes, ROLE_USAGE)
            })
            .collect();
        Role { buffers, dtype }
    }

    /// Uploads `data` (f32 values) into `pieces`, encoded in the role's
    /// dtype (rounded to nearest even).
    pub(crate) fn write(&self, gpu: &Gpu, pieces: &[TensorPiece], data: &[f32]) {
        let b = self.dtype.bytes();
        for p in pieces {
            let src = &data[p.tensor_offset as usize..(p.tensor_offset + p.len) as usize];
            self.write_bytes(gpu, p, b, &self.dtype.encode(src));
        }
    }

    /// Uploads a tensor's bytes as stored (in the role's dtype, the
    /// tensor's elements in order) into its `pieces`.
    pub(crate) fn write_raw(&self, gpu: &Gpu, pieces: &[TensorPiece], bytes: &[u8]) {
        let b = self.dtype.bytes();
        for p in pieces {
            let at = (p.tensor_offset * b) as usize;
            self.write_bytes(gpu, p, b, &bytes[at..at + (p.len * b) as usize]);
        }
    }

    /// Uploads one piece's bytes (in the role's dtype). A 16-bit piece of
    /// odd length is padded to whole words with the element after it,
    /// which is the tensor's padding (every tensor is padded to 64
    /// elements inside its chunk): a zero.
    fn write_bytes(&self, gpu: &Gpu, p: &TensorPiece, b: u64, bytes: &[u8]) {
        let mut bytes = std::borrow::Cow::Borrowed(bytes);
        if bytes.len() % 4 != 0 {
            let mut v = bytes.into_owned();
            v.resize(v.len().next_multiple_of(4), 0);
            bytes = std::borrow::Cow::Owned(v);
        }
        gpu.queue()
            .write_buffer(&self.buffers[p.chunk], p.chunk_offset * b, &bytes);
    }

    /// The byte ranges of `pieces`, each rounded up to whole 4-byte words
    /// (copies move words; the extra bytes are the tensor's padding).
    pub(crate) fn ranges<'a>(
        &'a self,
        pieces: &[TensorPiece],
    ) -> Vec<(&'a wgpu::Buffer, u64, u64)> {
        let b = self.dtype.bytes();
        pieces
            .iter()
            .map(|p| {
                let len = (p.len * b).next_multiple_of(4);
                (&self.buffers[p.chunk], p.chunk_offset * b, len)
            })
            .collect()
    }
}

/// How a [`ParamSet`] is allocated ([`ParamSet::with_options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamSetOptions {
    /// The params' storage (f32 by default).
    pub param_dtype: ParamDtype,
    /// The gradients' storage (f32 by default). bf16 or f16 halves the
    /// bytes the backward pass writes, the step reads and the all-reduce
    /// moves; f16 gradients need a loss scale (`OptimizerSpec::loss_scale`).
    pub grad_dtype: ParamDtype,
    /// Elements per chunk (a multiple of 64); `None`: as many as the
    /// device's binding limit allows for f32.
    pub chunk_elems: Option<u64>,
}

/// The parameters and gradients of every tensor of a [`ParamLayout`], in
/// flat chunked buffers on one [`Gpu`], each in its
/// [`ParamDtype`] (f32, bf16 or f16).
///
/// Element `e` of a chunk sits at byte `e x 4` of the chunk's buffer for
/// f32 and `e x 2` for the 16-bit dtypes (a tensor's first byte is then a
/// multiple of 128: bind the whole chunk and index into it).
///
/// Gradients are written by the user: from the host with
/// [`write_grad`](Self::write_grad), or on the device by the user's own
/// kernels, which bind [`grad_buffers`](Self::grad_buffers) at the places
/// [`pieces`](Self::pieces) gives.
#[derive(Debug)]
pub struct ParamSet {
    id: u64,
    gpu_id: u64,
    layout: ParamLayout,
    placement: Placement,
    pub(crate) params: Role,
    pub(crate) grads: Role,
    /// Host writes into the params so far (uploads, restores, broadcasts):
    /// an optimizer with f32 master weights reloads them when it changed.
    writes: std::sync::atomic::AtomicU64,
}

impl ParamSet {
    /// Allocates f32 params and grads (zero-filled) for `layout`, in chunks
    /// as large as the device allows.
    pub fn new(gpu: &Gpu, layout: &ParamLayout) -> Result<ParamSet> {
        ParamSet::with_options(gpu, layout, ParamSetOptions::default())
    }

    /// Like [`new`](Self::new) with chunks of `chunk_elems` elements (a
    /// multiple of 64, at most the device's binding limit). Small chunks let
    /// tests exercise tensors that straddle a chunk boundary.
    pub fn with_chunk_elems(gpu: &Gpu, layout: &ParamLayout, chunk_elems: u64) -> Result<ParamSet> {
        let options = ParamSetOptions {
            chunk_elems: Some(chunk_elems),
            ..ParamSetOptions::default()
        };
        ParamSet::with_options(gpu, layout, options)
    }

    /// Allocates params and grads (zero-filled) for `layout` in the dtypes
    /// and chunks of `options`. Every adapter serves every dtype: 16-bit
    /// values are stored two per `u32` and converted on their bits.
    ///
    /// # Errors
    /// A `chunk_elems` above the device's binding limit or not a multiple
    /// of 64 ([`Error::LimitExceeded`], [`Error::InvalidConfig`]); a wgpu
    /// error (out of memory).
    pub fn with_options(
        gpu: &Gpu,
        layout: &ParamLayout,
        options: ParamSetOptions,
    ) -> Result<ParamSet> {
        let max = gpu.max_binding_elems();
        let chunk_elems = options.chunk_elems.unwrap_or(max);
        if chunk_elems > max {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size".into(),
                needed: chunk_elems * 4,
                available: max * 4,
                hint: "; choose a smaller chunk_elems".into(),
            });
        }
        let placement = Placement::new(layout, chunk_elems)?;
        let (params, grads) = gpu.scoped("params/new", || {
            (
                Role::zeroed(gpu, "params", &placement, options.param_dtype),
                Role::zeroed(gpu, "grads", &placement, options.grad_dtype),
            )
        })?;
        Ok(ParamSet {
            id: next_id(),
            gpu_id: gpu.id(),
            layout: layout.clone(),
            placement,
            params,
            grads,
            writes: Default::default(),
        })
    }

    /// Counts a write into the params that did not go through the
    /// optimizer (see `writes`).
    pub(crate) fn note_param_write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    /// Host writes into the params so far.
    pub(crate) fn param_writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How the params rest on the device.
    pub fn param_dtype(&self) -> ParamDtype {
        self.params.dtype
    }
    /// How the gradients rest on the device (what a user's backward kernel
    /// writes: f32, or bf16 / f16 two per `u32`, element `2k` in the low
    /// half).
    pub fn grad_dtype(&self) -> ParamDtype {
        self.grads.dtype
    }

    /// A process-unique id of this set.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The id of the [`Gpu`] that holds the buffers.
    pub fn gpu_id(&self) -> u64 {
        self.gpu_id
    }
    /// The layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    /// The chunking of the flat space.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }
    /// Number of chunks (buffers per role).
    pub fn num_chunks(&self) -> usize {
        self.placement.chunk_lens().len()
    }
    /// Where tensor `name` lives: one piece, or several when it straddles a
    /// chunk boundary (none for a zero-length tensor).
    pub fn pieces(&self, name: &str) -> Result<&[TensorPiece]> {
        Ok(self.placement.pieces(self.layout.index_of(name)?))
    }
    /// The parameter buffers, one per chunk.
    pub fn param_buffers(&self) -> &[wgpu::Buffer] {
        &self.params.buffers
    }
    /// The gradient buffers, one per chunk (usage STORAGE | COPY_SRC | COPY_DST).
    pub fn grad_buffers(&self) -> &[wgpu::Buffer] {
        &self.grads.buffers
    }

    fn checked(&self, gpu: &Gpu, name: &str, len: usize) -> Result<usize> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        gpu.check_health()?;
        let k = self.layout.index_of(name)?;
        let t = &self.layout.tensors()[k];
        if t.numel != len as u64 {
            return Err(Error::mismatch(format!(
                "tensor `{name}` of shape {:?} has {} elements, but {len} were given",
                t.shape, t.numel
            )));
        }
        Ok(k)
    }

    /// Uploads the values of parameter tensor `name` (rounded to nearest
    /// even when the params are bf16 or f16; an optimizer with f32 master
    /// weights reloads its masters from the params at its next step).
    ///
    /// # Errors
    /// Unknown name, wrong length or wrong device; nothing is written then.
    pub fn write(&mut self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        let k = self.checked(gpu, name, data.len())?;
        self.params.write(gpu, self.placement.pieces(k), data);
        self.note_param_write();
        Ok(())
    }

    /// Uploads the gradient of tensor `name`.
    pub fn write_grad(&mut self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        let k = self.checked(gpu, name, data.len())?;
        self.grads.write(gpu, self.placement.pieces(k), data);
        Ok(())
    }

    /// Uploads every parameter tensor, in layout order. All lengths are
    /// checked before anything is written.
    pub fn write_all(&mut self, gpu: &Gpu, data: &[Vec<f32>]) -> Result<()> {
        self.check_all(gpu, data)?;
        for (k, d) in data.iter().enumerate() {
            self.params.write(gpu, self.placement.pieces(k), d);
        }
        self.note_param_write();
        Ok(())
    }

    /// Uploads every gradient, in layout order. All lengths are checked
    /// before anything is written.
    pub fn write_grads_all(&mut self, gpu: &Gpu, data: &[Vec<f32>]) -> Result<()> {
        self.check_all(gpu, data)?;
        for (k, d) in data.iter().enumerate() {
            self.grads.write(gpu, self.placement.pieces(k), d);
        }
        Ok(())
    }

    fn check_all(&self, gpu: &Gpu, data: &[Vec<f32>]) -> Result<()> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        if data.len() != self.layout.len() {
            return Err(Error::mismatch(format!(
                "the layout has {} tensors, but {} were given",
                self.layout.len(),
                data.len()
            )));
        }
        for (t, d) in self.layout.tensors().iter().zip(data) {
            self.checked(gpu, &t.name, d.len())?;
        }
        Ok(())
    }

    /// Downloads parameter tensor `name` (waits for the GPU).
    pub fn read(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        let k = self.layout.index_of(name)?;
        read_role(gpu, &self.params, &self.placement, &[k]).map(|mut v| v.remove(0))
    }

    /// Downloads parameter tensor `name` as stored: little-endian f32, bf16
    /// or f16 elements ([`param_dtype`](Self::param_dtype)).
    pub fn read_raw(&self, gpu: &Gpu, name: &str) -> Result<Vec<u8>> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        let k = self.layout.index_of(name)?;
        read_role_bytes(gpu, &self.params, &self.placement, &[k]).map(|mut v| v.remove(0))
    }

    /// Downloads the gradient of tensor `name` (waits for the GPU).
    pub fn read_grad(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        let k = self.layout.index_of(name)?;
        read_role(gpu, &self.grads, &self.placement, &[k]).map(|mut v| v.remove(0))
    }

    /// Downloads every parameter tensor, in layout order, in one copy.
    pub fn read_all(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        let all: Vec<usize> = (0..self.layout.len()).collect();
        read_role(gpu, &self.params, &self.placement, &all)
    }

    /// Sets every gradient to zero on the device (no upload).
    pub fn zero_grads(&mut self, gpu: &Gpu) -> Result<()> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        gpu.scoped("params/zero_grads", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("params/zero_grads"),
                });
            for b in &self.grads.buffers {
                enc.clear_buffer(b, 0, None);
            }
            gpu.queue().submit([enc.finish()]);
        })
    }
}

/// Downloads tensors `which` of `role`, in one staging copy, as f32
/// values (16-bit ones widened exactly).
pub(crate) fn read_role(
    gpu: &Gpu,
    role: &Role,
    placement: &Placement,
    which: &[usize],
) -> Result<Vec<Vec<f32>>> {
    Ok(read_role_bytes(gpu, role, placement, which)?
        .iter()
        .map(|b| role.dtype.decode(b))
        .collect())
}

/// Downloads tensors `which` of `role` as stored (little-endian elements
/// of the role's dtype), in one staging copy.
pub(crate) fn read_role_bytes(
    gpu: &Gpu,
    role: &Role,
    placement: &Placement,
    which: &[usize],
) -> Result<Vec<Vec<u8>>> {
    let mut ranges = Vec::new();
    for &k in which {
        ranges.extend(role.ranges(placement.pieces(k)));
    }
    let bytes = gpu.read_ranges("read tensors", &ranges)?;
    let b = role.dtype.bytes() as usize;
    let mut out = Vec::with_capacity(which.len());
    let mut at = 0;
    for &k in which {
        let mut t = Vec::new();
        for p in placement.pieces(k) {
            let len = p.len as usize * b;
            t.extend_from_slice(&bytes[at..at + len]);
            at += len.next_multiple_of(4);
        }
        out.push(t);
    }
    Ok(out)
}

/// A copy of every parameter on the device (one buffer per chunk), taken
/// and restored with buffer copies: no trip through the host. Used to keep
/// the best weights for early stopping.
#[derive(Debug)]
pub struct ParamSnapshot {
    params_id: u64,
    gpu_id: u64,
    role: Role,
}

impl ParamSet {
    /// Allocates a snapshot of this set's parameters and fills it now.
    pub fn snapshot(&self, gpu: &Gpu) -> Result<ParamSnapshot> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        let role = gpu.scoped("params/snapshot/new", || {
            Role::zeroed(gpu, "params/snapshot", &self.placement, self.params.dtype)
        })?;
        let snap = ParamSnapshot {
            params_id: self.id,
            gpu_id: self.gpu_id,
            role,
        };
        self.save_to(gpu, &snap)?;
        Ok(snap)
    }

    fn copy(&self, gpu: &Gpu, snap: &ParamSnapshot, to_snapshot: bool) -> Result<()> {
        gpu.check_same("this ParamSet", self.gpu_id)?;
        gpu.check_same("the snapshot", snap.gpu_id)?;
        if snap.params_id != self.id {
            return Err(Error::mismatch(format!(
                "the snapshot was taken of ParamSet #{}, not #{}",
                snap.params_id, self.id
            )));
        }
        gpu.scoped("params/snapshot/copy", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("params/snapshot/copy"),
                });
            for (p, s) in self.params.buffers.iter().zip(&snap.role.buffers) {
                if to_snapshot {
                    enc.copy_buffer_to_buffer(p, 0, s, 0, None);
                } else {
                    enc.copy_buffer_to_buffer(s, 0, p, 0, None);
                }
            }
            gpu.queue().submit([enc.finish()]);
        })
    }

    /// Copies the current parameters into `snap` (on the device).
    pub fn save_to(&self, gpu: &Gpu, snap: &ParamSnapshot) -> Result<()> {
        self.copy(gpu, snap, true)
    }

    /// Downloads tensor `name` of the snapshot `snap` of this set.
    pub fn read_snapshot(&self, gpu: &Gpu, snap: &ParamSnapshot, name: &str) -> Result<Vec<f32>> {
        gpu.check_same("the snapshot", snap.gpu_id)?;
        if snap.params_id != self.id {
            return Err(Error::mismatch(
                "the snapshot was taken of another ParamSet",
            ));
        }
        let k = self.layout.index_of(name)?;
        read_role(gpu, &snap.role, &self.placement, &[k]).map(|mut v| v.remove(0))
    }

    /// Downloads tensor `name` of the snapshot `snap` as stored (as
    /// [`read_raw`](Self::read_raw)).
    pub fn read_snapshot_raw(
        &self,
        gpu: &Gpu,
        snap: &ParamSnapshot,
        name: &str,
    ) -> Result<Vec<u8>> {
        gpu.check_same("the snapshot", snap.gpu_id)?;
        if snap.params_id != self.id {
            return Err(Error::mismatch(
                "the snapshot was taken of another ParamSet",
            ));
        }
        let k = self.layout.index_of(name)?;
        read_role_bytes(gpu, &snap.role, &self.placement, &[k]).map(|mut v| v.remove(0))
    }

    /// Copies `snap` back into the parameters (on the device).
    pub fn restore_from(&mut self, gpu: &Gpu, snap: &ParamSnapshot) -> Result<()> {
        self.copy(gpu, snap, false)?;
        self.note_param_write();
        Ok(())
    }
}
