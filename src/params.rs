//! [`ParamSet`]: the parameters and gradients of a layout on one device.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, next_id};
use crate::layout::{ParamLayout, Placement, TensorPiece};

/// One role (params, grads, or an optimizer state): a buffer per chunk.
#[derive(Debug)]
pub(crate) struct Role {
    pub(crate) buffers: Vec<wgpu::Buffer>,
}

pub(crate) const ROLE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Role {
    /// Allocates one buffer per chunk, filled with `init` (zero-filled when 0).
    pub(crate) fn new(gpu: &Gpu, label: &str, placement: &Placement, init: f32) -> Role {
        let buffers = placement
            .chunk_lens()
            .iter()
            .enumerate()
            .map(|(c, &len)| {
                let buf = gpu.create_buffer(&format!("{label}/chunk{c}"), len * 4, ROLE_USAGE);
                if init != 0.0 {
                    let data = vec![init; len as usize];
                    gpu.queue()
                        .write_buffer(&buf, 0, bytemuck::cast_slice(&data));
                }
                buf
            })
            .collect();
        Role { buffers }
    }

    pub(crate) fn write(&self, gpu: &Gpu, pieces: &[TensorPiece], data: &[f32]) {
        for p in pieces {
            let src = &data[p.tensor_offset as usize..(p.tensor_offset + p.len) as usize];
            gpu.queue().write_buffer(
                &self.buffers[p.chunk],
                p.chunk_offset * 4,
                bytemuck::cast_slice(src),
            );
        }
    }

    pub(crate) fn ranges<'a>(
        &'a self,
        pieces: &[TensorPiece],
    ) -> Vec<(&'a wgpu::Buffer, u64, u64)> {
        pieces
            .iter()
            .map(|p| (&self.buffers[p.chunk], p.chunk_offset * 4, p.len * 4))
            .collect()
    }
}

/// The parameters and gradients of every tensor of a [`ParamLayout`], in
/// flat chunked buffers on one [`Gpu`].
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
}

impl ParamSet {
    /// Allocates params and grads (zero-filled) for `layout`, in chunks as
    /// large as the device allows.
    pub fn new(gpu: &Gpu, layout: &ParamLayout) -> Result<ParamSet> {
        ParamSet::with_chunk_elems(gpu, layout, gpu.max_binding_elems())
    }

    /// Like [`new`](Self::new) with chunks of `chunk_elems` elements (a
    /// multiple of 64, at most the device's binding limit). Small chunks let
    /// tests exercise tensors that straddle a chunk boundary.
    pub fn with_chunk_elems(gpu: &Gpu, layout: &ParamLayout, chunk_elems: u64) -> Result<ParamSet> {
        let max = gpu.max_binding_elems();
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
                Role::new(gpu, "params", &placement, 0.0),
                Role::new(gpu, "grads", &placement, 0.0),
            )
        })?;
        Ok(ParamSet {
            id: next_id(),
            gpu_id: gpu.id(),
            layout: layout.clone(),
            placement,
            params,
            grads,
        })
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

    /// Uploads the values of parameter tensor `name`.
    ///
    /// # Errors
    /// Unknown name, wrong length or wrong device; nothing is written then.
    pub fn write(&mut self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        let k = self.checked(gpu, name, data.len())?;
        self.params.write(gpu, self.placement.pieces(k), data);
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

/// Downloads tensors `which` of `role`, in one staging copy.
pub(crate) fn read_role(
    gpu: &Gpu,
    role: &Role,
    placement: &Placement,
    which: &[usize],
) -> Result<Vec<Vec<f32>>> {
    let mut ranges = Vec::new();
    let mut lens = Vec::new();
    for &k in which {
        let pieces = placement.pieces(k);
        ranges.extend(role.ranges(pieces));
        lens.push(pieces.iter().map(|p| p.len as usize).sum::<usize>());
    }
    let bytes = gpu.read_ranges("read tensors", &ranges)?;
    let all: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
    let mut out = Vec::with_capacity(lens.len());
    let mut at = 0;
    for n in lens {
        out.push(all[at..at + n].to_vec());
        at += n;
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
            Role::new(gpu, "params/snapshot", &self.placement, 0.0)
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

    /// Copies `snap` back into the parameters (on the device).
    pub fn restore_from(&mut self, gpu: &Gpu, snap: &ParamSnapshot) -> Result<()> {
        self.copy(gpu, snap, false)
    }
}
