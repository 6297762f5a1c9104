//! Collectives for data-parallel training: the gradient all-reduce and the
//! parameter broadcast, between devices of one process
//! ([`LocalCommunicator`]) or between MPI ranks (`MpiCommunicator`, cargo
//! feature `mpi`).
//!
//! wgpu cannot share a buffer between two devices, so everything goes
//! through host memory: each device copies its gradients into MAP_READ
//! staging buffers, the host sums them, and the sum is uploaded back through
//! MAP_WRITE staging buffers. The work is cut into *buckets* (Horovod / DDP
//! style, [`CollectiveConfig::bucket_bytes`]) and pipelined: the copies and
//! maps of every bucket on every device are issued up front, bucket `b` is
//! reduced as soon as every device has it mapped while later buckets are
//! still being copied, and its upload is submitted at once, so downloads,
//! host reduction and uploads overlap. Staging buffers are created on the
//! first all-reduce and reused by every later one.
//!
//! # Semantics
//! * The communicators only **sum**. [`ReduceOp::Mean`] is the sum with the
//!   factor `1 / world_size` folded into each optimizer's gradient scale
//!   ([`Optimizer::set_grad_scale`](crate::Optimizer::set_grad_scale)), so it
//!   costs no extra pass over the data and the host never divides;
//!   [`ReduceOp::Sum`] leaves the scale at 1. [`crate::pool::DataParallel`]
//!   does this for you.
//! * **Deterministic:** the in-process sum is computed in f32 in the fixed
//!   device order `((g0 + g1) + g2) + ...`, once, and the same bytes are
//!   uploaded to every device, so replicas stay bitwise equal step after step.
//!   See `MpiCommunicator` for the MPI reduction order.
//! * **All or nothing:** a failure anywhere (a map that fails, a lost device,
//!   a wait past [`Gpu::wait_timeout`](crate::Gpu::wait_timeout)) makes the
//!   all-reduce return [`Error::Collective`] on
//!   every participant, and [`DataParallel::step`](crate::pool::DataParallel::step)
//!   then steps no replica. Gradients are unspecified after such an error
//!   (some buckets may hold the sum); parameters and optimizer state are
//!   untouched.
//! * Layouts (tensor names, shapes, order and chunking) must agree on every
//!   participant; they are compared before anything is reduced.

mod local;
#[cfg(feature = "mpi")]
mod mpi;
pub(crate) mod shard;
pub(crate) mod staging;

#[doc(hidden)]
pub use staging::PartTimes;

pub use local::LocalCommunicator;
#[cfg(feature = "mpi")]
pub use mpi::{MpiCommunicator, MpiReduction};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::layout::Placement;
use crate::params::ParamSet;

/// How gradients of the participants are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReduceOp {
    /// The average over all participants: the sum, with `1 / world_size`
    /// folded into the optimizer's gradient scale (no division on the host,
    /// no extra pass). The default, as in PyTorch DDP.
    #[default]
    Mean,
    /// The plain sum; the gradient scale stays at 1.
    Sum,
}

impl ReduceOp {
    /// The factor this op multiplies the summed gradient by, for
    /// `world_size` participants: `1 / world_size` for `Mean`, 1 for `Sum`.
    pub fn grad_scale(self, world_size: usize) -> f64 {
        match self {
            ReduceOp::Mean => 1.0 / world_size.max(1) as f64,
            ReduceOp::Sum => 1.0,
        }
    }
}

/// Default bucket size: 16 MiB.
pub const DEFAULT_BUCKET_BYTES: u64 = 16 << 20;

/// Options of the staged all-reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectiveConfig {
    /// Bytes per bucket (rounded down to a multiple of 256, at least 256).
    /// Smaller buckets overlap better, larger ones need fewer submits.
    pub bucket_bytes: u64,
    /// Host threads that sum one bucket, and that copy it into the
    /// devices' staging buffers, one device each (0: the number of CPUs, at
    /// most 8).
    pub reduce_threads: usize,
}

impl Default for CollectiveConfig {
    fn default() -> Self {
        CollectiveConfig {
            bucket_bytes: DEFAULT_BUCKET_BYTES,
            reduce_threads: 0,
        }
    }
}

impl CollectiveConfig {
    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `bucket_bytes < 256`.
    pub fn validate(&self) -> Result<()> {
        if self.bucket_bytes < 256 {
            return Err(Error::invalid(
                "bucket_bytes",
                self.bucket_bytes,
                ">= 256",
                "Invalid bucket size",
            ));
        }
        Ok(())
    }
    pub(crate) fn threads(&self) -> usize {
        if self.reduce_threads > 0 {
            self.reduce_threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8)
        }
    }
}

/// One device's part in a collective: the device and its parameter set.
pub type Participant<'a> = (&'a Gpu, &'a ParamSet);

/// Combines the gradients of data-parallel replicas.
///
/// A communicator sees the replicas of its own process (`local`); the world
/// may hold more (other MPI ranks). Every method is collective: all
/// participants call it in the same order, and all get an error when one
/// fails.
pub trait Communicator {
    /// Participants in the whole world (all processes), the `N` of
    /// [`ReduceOp::Mean`].
    fn world_size(&self) -> usize;

    /// The world index of this process's first local replica (0 in process,
    /// the rank with MPI).
    fn first_index(&self) -> usize;

    /// Verifies that every participant has the same layout (names, shapes,
    /// order, chunking) and that `local` fits this communicator. Runs before
    /// anything is reduced.
    ///
    /// # Errors
    /// [`Error::LayoutMismatch`] naming the participant that differs.
    fn check_layouts(&mut self, local: &[Participant<'_>]) -> Result<()>;

    /// Replaces every local replica's gradients by the sum over the world,
    /// bitwise the same on every participant.
    ///
    /// # Errors
    /// [`Error::Collective`] on every participant when any fails.
    fn all_reduce_sum(&mut self, local: &[Participant<'_>]) -> Result<()>;

    /// Copies the parameters of world participant 0 to every participant,
    /// and waits until they are written.
    ///
    /// # Errors
    /// [`Error::Collective`] on every participant when any fails.
    fn broadcast_params(&mut self, local: &[Participant<'_>]) -> Result<()>;

    /// Agreement: `Ok` on every participant if `outcome` is `Ok` on every
    /// participant; otherwise an error on all of them.
    ///
    /// # Errors
    /// The local error, or [`Error::Collective`] naming a failed peer.
    fn agree(&mut self, outcome: Result<()>) -> Result<()>;

    /// Agrees on sharded optimizer state (ZeRO-1): `shards` holds each local
    /// replica's shard (`Optimizer::shard`, `None` when unsharded); the
    /// result is each tensor's owner as a world index, or `None` when no
    /// participant shards. The default serves the devices of one process
    /// (any partition, each tensor in exactly one shard).
    ///
    /// # Errors
    /// Participants that disagree (some sharded, some not, overlapping or
    /// missing tensors), on every participant.
    fn agree_shards(
        &mut self,
        layout: &crate::layout::ParamLayout,
        shards: &[Option<&[bool]>],
    ) -> Result<Option<Vec<usize>>> {
        shard::local_owners(layout, shards)
    }

    /// Copies each tensor's params from its owner (`owners`, world
    /// indices, from [`agree_shards`](Self::agree_shards)) into every other
    /// participant, after each updated its shard.
    ///
    /// # Errors
    /// [`Error::Collective`] on every participant when one fails; the
    /// params of the shards not yet gathered are then those of the step
    /// before on the non-owners: resume from the last checkpoint.
    fn gather_params(&mut self, local: &[Participant<'_>], owners: &[usize]) -> Result<()> {
        shard::gather_local(local, owners, None)
    }

    /// The all-reduce's parts timed alone (downloads, host sums, uploads),
    /// for benchmarks; `None` where the communicator cannot split them
    /// (MPI).
    #[doc(hidden)]
    fn time_parts(&mut self, local: &[Participant<'_>]) -> Result<Option<PartTimes>> {
        let _ = local;
        Ok(None)
    }

    /// Test hook: the map of `bucket` on local device `device` fails during
    /// the next all-reduce. Not part of the stable API; no-op by default.
    #[doc(hidden)]
    fn inject_fault(&mut self, device: usize, bucket: usize) {
        let _ = (device, bucket);
    }

    /// Test hook: reading the params of local device `device`'s shard
    /// fails during the next [`gather_params`](Self::gather_params), as a
    /// lost device's read would. Not part of the stable API; no-op by
    /// default.
    #[doc(hidden)]
    fn inject_gather_fault(&mut self, device: usize) {
        let _ = device;
    }
}

/// A stable 64-bit fingerprint (FNV-1a) of a placement's tensor names,
/// shapes, order and chunking; equal on every machine and build.
pub fn layout_fingerprint(params: &ParamSet) -> u64 {
    let mut h = Fnv::new();
    let layout = params.layout();
    h.u64(layout.len() as u64);
    for t in layout.tensors() {
        h.bytes(t.name.as_bytes());
        h.u64(t.shape.len() as u64);
        for &d in &t.shape {
            h.u64(d as u64);
        }
    }
    placement_hash(&mut h, params.placement());
    // The gradients' storage (f32 adds nothing: fingerprints of f32 sets
    // are those of earlier versions).
    if params.grad_dtype() != crate::precision::ParamDtype::F32 {
        h.bytes(params.grad_dtype().as_str().as_bytes());
    }
    h.0
}

fn placement_hash(h: &mut Fnv, p: &Placement) {
    h.u64(p.chunk_elems());
    h.u64(p.chunk_lens().len() as u64);
}

struct Fnv(u64);
impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        for &x in b {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        for x in v.to_le_bytes() {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A human-readable description of the first difference between the layouts
/// of `a` and `b`, or `None` when they agree.
pub fn describe_layout_difference(a: &ParamSet, b: &ParamSet) -> Option<String> {
    let (la, lb) = (a.layout().tensors(), b.layout().tensors());
    for (i, (x, y)) in la.iter().zip(lb).enumerate() {
        if x.name != y.name || x.shape != y.shape {
            return Some(format!(
                "tensor {i} is `{}` {:?} on one and `{}` {:?} on the other",
                x.name, x.shape, y.name, y.shape
            ));
        }
    }
    if la.len() != lb.len() {
        return Some(format!(
            "{} tensors on one and {} on the other",
            la.len(),
            lb.len()
        ));
    }
    if a.placement().chunk_elems() != b.placement().chunk_elems() {
        return Some(format!(
            "chunks of {} elements on one and {} on the other",
            a.placement().chunk_elems(),
            b.placement().chunk_elems()
        ));
    }
    None
}

/// Sums `inputs` element-wise into `out` in the fixed order
/// `((in0 + in1) + in2) + ...` in f32, using up to `threads` threads. Every
/// element's result depends only on the inputs and their order, never on
/// the thread count.
pub fn sum_in_order(out: &mut [f32], inputs: &[&[f32]], threads: usize) {
    fn part(out: &mut [f32], inputs: &[&[f32]], start: usize) {
        // Blocks keep `out` in L1 while each input streams through once.
        const BLOCK: usize = 4096;
        let mut at = 0;
        while at < out.len() {
            let end = (at + BLOCK).min(out.len());
            let o = &mut out[at..end];
            let (s, e) = (start + at, start + end);
            match inputs {
                [] => o.fill(0.0),
                [a] => o.copy_from_slice(&a[s..e]),
                [a, b, rest @ ..] => {
                    for ((o, &x), &y) in o.iter_mut().zip(&a[s..e]).zip(&b[s..e]) {
                        *o = x + y;
                    }
                    for r in rest {
                        for (o, &x) in o.iter_mut().zip(&r[s..e]) {
                            *o += x;
                        }
                    }
                }
            }
            at = end;
        }
    }
    let n = out.len();
    let threads = threads.clamp(1, 64).min(n.div_ceil(64 * 1024).max(1));
    if threads <= 1 {
        part(out, inputs, 0);
        return;
    }
    let per = n.div_ceil(threads).next_multiple_of(16);
    std::thread::scope(|s| {
        for (i, o) in out.chunks_mut(per).enumerate() {
            s.spawn(move || part(o, inputs, i * per));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_in_order_is_the_fixed_order_f32_sum_for_any_thread_count() {
        let n = 300_001;
        let inputs: Vec<Vec<f32>> = (0..4)
            .map(|k| {
                (0..n)
                    .map(|i| ((i * 7919 + k * 104_729) % 1000) as f32 * 1e-3 - 0.5)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
        let want: Vec<f32> = (0..n)
            .map(|i| ((inputs[0][i] + inputs[1][i]) + inputs[2][i]) + inputs[3][i])
            .collect();
        for t in [1, 2, 3, 8] {
            let mut out = vec![0.0; n];
            sum_in_order(&mut out, &refs, t);
            assert!(
                out.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "threads {t}"
            );
        }
    }

    #[test]
    fn mean_scale_is_one_over_n_and_sum_is_one() {
        assert_eq!(ReduceOp::Mean.grad_scale(4), 0.25);
        assert_eq!(ReduceOp::Sum.grad_scale(4), 1.0);
    }

    #[test]
    fn small_buckets_are_rejected() {
        let c = CollectiveConfig {
            bucket_bytes: 8,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
