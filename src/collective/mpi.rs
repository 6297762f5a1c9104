//! `MpiCommunicator`: all-reduce between processes (one device per rank)
//! over MPI (rsmpi), on one machine or many.

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use crate::error::{Error, Result};

use super::staging::{Engine, Fault, plan_buckets};
use super::{CollectiveConfig, Communicator, Participant, layout_fingerprint, sum_in_order};

/// How MPI ranks combine a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MpiReduction {
    /// MPI's own all-reduce (`MPI_Allreduce` with `MPI_SUM`). Bandwidth
    /// optimal (ring / recursive doubling, chosen by MPI). The summation
    /// order is implementation-defined; see [`MpiCommunicator`] for what
    /// that means for determinism. Every bucket's result is checksummed
    /// across ranks and rank 0's bytes are broadcast if any rank differs, so
    /// replicas are bitwise equal either way.
    #[default]
    Native,
    /// Rank 0 gathers every rank's bucket, sums in rank order
    /// `((g0 + g1) + g2) + ...` in f32 and broadcasts the result:
    /// deterministic across MPI implementations, process placement and
    /// tuning, and bitwise equal to [`LocalCommunicator`](super::LocalCommunicator)
    /// on the same gradients, at the cost of `world_size` times the data
    /// arriving at rank 0.
    RankOrdered,
}

/// All-reduce between MPI ranks, each owning one device (one replica per
/// process). Buckets are staged through host memory with the same pipeline
/// as [`LocalCommunicator`](super::LocalCommunicator): bucket `b`'s MPI
/// collective runs while later buckets are still being copied and mapped,
/// and its upload is submitted before bucket `b + 1` is combined.
///
/// # Determinism
/// With [`MpiReduction::Native`], Open MPI's `tuned` collective component
/// picks the all-reduce algorithm (recursive doubling, ring, segmented
/// ring, ...) by fixed rules from the communicator size and message size,
/// so for the same Open MPI version, process count, bucket size and MCA
/// parameters a step gives the same bytes run after run; the order differs
/// from the in-process device order, and changing any of those may change
/// the last bits. Whether every rank gets the same bytes is not promised by
/// the MPI standard (for the algorithms above it holds, since f32 addition
/// is commutative and each segment is reduced once); this communicator
/// checks it per bucket with a checksum all-reduce (min and max) and, when
/// ranks differ, broadcasts rank 0's result, so replicas never diverge.
/// [`MpiReduction::RankOrdered`] is deterministic everywhere.
///
/// # Failures
/// A rank whose download fails still joins the bucket's collective, with a
/// failure flag riding along with the data (one extra element); every rank
/// sees the flag in the same bucket and returns [`Error::Collective`], so no
/// rank hangs and no rank steps. The failing rank's own wait is bounded by
/// its [`Gpu::wait_timeout`](crate::Gpu::wait_timeout).
pub struct MpiCommunicator {
    comm: SimpleCommunicator,
    config: CollectiveConfig,
    reduction: MpiReduction,
    engine: Option<Engine>,
    fault: Option<Fault>,
    gather_fault: bool,
    send: Vec<f32>,
    recv: Vec<f32>,
    gathered: Vec<f32>,
}

impl std::fmt::Debug for MpiCommunicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiCommunicator")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .field("reduction", &self.reduction)
            .finish()
    }
}

const FAILED: f32 = 1.0;

impl MpiCommunicator {
    /// A communicator over the ranks of `comm` (e.g. `universe.world()`),
    /// using MPI's all-reduce ([`MpiReduction::Native`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bucket under 256 bytes.
    pub fn new(comm: SimpleCommunicator, config: CollectiveConfig) -> Result<MpiCommunicator> {
        config.validate()?;
        Ok(MpiCommunicator {
            comm,
            config,
            reduction: MpiReduction::Native,
            engine: None,
            fault: None,
            gather_fault: false,
            send: Vec::new(),
            recv: Vec::new(),
            gathered: Vec::new(),
        })
    }

    /// Chooses how buckets are combined.
    pub fn with_reduction(mut self, reduction: MpiReduction) -> MpiCommunicator {
        self.reduction = reduction;
        self
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn peer_failed(&self, op: &str) -> Error {
        Error::Collective {
            operation: op.into(),
            participant: "a peer rank".into(),
            reason: format!(
                "another rank failed (this is rank {} of {}); see that rank's error",
                self.comm.rank(),
                self.comm.size()
            ),
        }
    }

    fn local_error(&self, op: &str, e: Error) -> Error {
        match e {
            Error::Collective { reason, .. } | Error::LayoutMismatch { reason } => {
                Error::Collective {
                    operation: op.into(),
                    participant: format!("rank {}", self.comm.rank()),
                    reason,
                }
            }
            other => Error::Collective {
                operation: op.into(),
                participant: format!("rank {}", self.comm.rank()),
                reason: other.to_string(),
            },
        }
    }

    /// Sum of one bucket over the ranks into `out`, with failure flags.
    fn combine(&mut self, inputs: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
        let n = out.len();
        self.send.resize(n + 1, 0.0);
        self.recv.resize(n + 1, 0.0);
        match inputs {
            Some(x) => {
                self.send[..n].copy_from_slice(x);
                self.send[n] = 0.0;
            }
            None => {
                self.send[..n].fill(0.0);
                self.send[n] = FAILED;
            }
        }
        match self.reduction {
            MpiReduction::Native => {
                self.comm.all_reduce_into(
                    &self.send[..n + 1],
                    &mut self.recv[..n + 1],
                    SystemOperation::sum(),
                );
            }
            MpiReduction::RankOrdered => {
                let root = self.comm.process_at_rank(0);
                if self.comm.rank() == 0 {
                    let size = self.comm.size() as usize;
                    self.gathered.resize(size * (n + 1), 0.0);
                    root.gather_into_root(&self.send[..n + 1], &mut self.gathered[..]);
                    let parts: Vec<&[f32]> = self.gathered.chunks(n + 1).collect();
                    sum_in_order(&mut self.recv[..n + 1], &parts, self.config.threads());
                } else {
                    root.gather_into(&self.send[..n + 1]);
                }
                root.broadcast_into(&mut self.recv[..n + 1]);
            }
        }
        if self.recv[n] != 0.0 {
            return Err(self.peer_failed("all-reduce"));
        }
        if self.reduction == MpiReduction::Native {
            // Identical on every rank? min and max of a checksum.
            let h = checksum(&self.recv[..n]);
            let mine = [h, !h];
            let mut r = [0u64; 2];
            self.comm
                .all_reduce_into(&mine[..], &mut r[..], SystemOperation::min());
            if r[0] != !r[1] {
                self.comm
                    .process_at_rank(0)
                    .broadcast_into(&mut self.recv[..n]);
            }
        }
        out.copy_from_slice(&self.recv[..n]);
        Ok(())
    }

    /// Joins the collectives of the first bucket with a failure flag, when
    /// this rank cannot run the pipeline at all.
    fn fail_first_bucket(&mut self, local: &[Participant<'_>], e: Error) -> Error {
        if let Some(&(_, p)) = local.first() {
            let d = p.grad_dtype();
            let plan = plan_buckets(
                p.placement().chunk_lens(),
                d.bytes(),
                self.config.bucket_bytes,
            );
            if let Some(b) = plan.first() {
                let mut out = vec![0.0; (b.bytes / d.bytes()) as usize];
                let _ = self.combine(None, &mut out);
            }
        }
        self.local_error("all-reduce", e)
    }
}

/// A 64-bit checksum of the bits of `v` (order-sensitive).
fn checksum(v: &[f32]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &x in v {
        h = (h ^ x.to_bits() as u64)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    h
}

impl Communicator for MpiCommunicator {
    fn world_size(&self) -> usize {
        self.comm.size() as usize
    }

    fn first_index(&self) -> usize {
        self.comm.rank() as usize
    }

    fn check_layouts(&mut self, local: &[Participant<'_>]) -> Result<()> {
        let ok = local.len() == 1;
        let fp = local.first().map_or(0, |&(_, p)| layout_fingerprint(p));
        let mine = [
            fp,
            self.config.bucket_bytes,
            self.reduction as u64,
            u64::from(!ok),
        ];
        let size = self.comm.size() as usize;
        let mut all = vec![0u64; 4 * size];
        self.comm.all_gather_into(&mine[..], &mut all[..]);
        if !ok {
            return Err(Error::invalid(
                "replicas",
                local.len(),
                "exactly 1 per MPI rank",
                "MpiCommunicator drives one device per rank",
            ));
        }
        let rows: Vec<&[u64]> = all.chunks(4).collect();
        for (r, row) in rows.iter().enumerate() {
            if row[3] != 0 {
                return Err(Error::mismatch(format!(
                    "rank {r} does not have exactly one replica"
                )));
            }
            if row[0] != rows[0][0] {
                return Err(Error::mismatch(format!(
                    "rank {r} has a different layout than rank 0 (fingerprint {:#018x} vs \
                     {:#018x}): every rank must build the same ParamLayout (names, shapes, \
                     order) with the same chunking",
                    row[0], rows[0][0]
                )));
            }
            if row[1] != rows[0][1] || row[2] != rows[0][2] {
                return Err(Error::mismatch(format!(
                    "rank {r} uses bucket_bytes {} / reduction {} but rank 0 uses {} / {}; \
                     every rank must use the same CollectiveConfig and MpiReduction",
                    row[1], row[2], rows[0][1], rows[0][2]
                )));
            }
        }
        Ok(())
    }

    fn all_reduce_sum(&mut self, local: &[Participant<'_>]) -> Result<()> {
        let fault = self.fault.take();
        if local.len() != 1 {
            let e = Error::invalid(
                "replicas",
                local.len(),
                "exactly 1 per MPI rank",
                "MpiCommunicator drives one device per rank",
            );
            return Err(self.fail_first_bucket(local, e));
        }
        if !self.engine.as_ref().is_some_and(|e| e.fits(local)) {
            match Engine::new(self.config, local) {
                Ok(e) => self.engine = Some(e),
                Err(e) => return Err(self.fail_first_bucket(local, e)),
            }
        }
        let mut engine = self.engine.take().expect("built above");
        engine.fault = fault;
        let r = engine.run(local, |_b, inputs, out| match inputs {
            Ok(views) => self.combine(Some(views[0]), out),
            Err(e) => {
                let _ = self.combine(None, out);
                Err(self.local_error("all-reduce", e))
            }
        });
        self.engine = Some(engine);
        r
    }

    fn broadcast_params(&mut self, local: &[Participant<'_>]) -> Result<()> {
        let Some(&(gpu, params)) = local.first() else {
            return Err(Error::invalid(
                "replicas",
                0,
                "exactly 1 per MPI rank",
                "MpiCommunicator drives one device per rank",
            ));
        };
        // The params as stored (f32, bf16 or f16), as 32-bit words: every
        // chunk holds a multiple of 64 elements.
        let bytes = params.param_dtype().bytes();
        let total: u64 = params.placement().chunk_lens().iter().sum::<u64>() * bytes / 4;
        let root = self.comm.process_at_rank(0);
        let mut data = vec![0u32; total as usize];
        let mut status = [0u32];
        if self.comm.rank() == 0 {
            let ranges: Vec<(&wgpu::Buffer, u64, u64)> = params
                .param_buffers()
                .iter()
                .zip(params.placement().chunk_lens())
                .map(|(b, &n)| (b, 0, n * bytes))
                .collect();
            match gpu.read_ranges("collective/broadcast", &ranges) {
                Ok(read) => data.copy_from_slice(&bytemuck::pod_collect_to_vec::<u8, u32>(&read)),
                Err(e) => {
                    status[0] = 1;
                    root.broadcast_into(&mut status[..]);
                    return Err(self.local_error("broadcast", e));
                }
            }
        }
        root.broadcast_into(&mut status[..]);
        if status[0] != 0 {
            return Err(self.peer_failed("broadcast"));
        }
        root.broadcast_into(&mut data[..]);
        if self.comm.rank() != 0 {
            let mut at = 0usize;
            let r = gpu.scoped("collective/broadcast", || {
                for (b, &n) in params
                    .param_buffers()
                    .iter()
                    .zip(params.placement().chunk_lens())
                {
                    let n = (n * bytes / 4) as usize;
                    gpu.queue()
                        .write_buffer(b, 0, bytemuck::cast_slice(&data[at..at + n]));
                    at += n;
                }
            });
            r.and_then(|_| gpu.synchronize())
                .map_err(|e| self.local_error("broadcast", e))?;
            params.note_param_write();
        }
        Ok(())
    }

    /// Over MPI a sharded run uses the standard partition
    /// (`pool::shard_tensors` over the world): rank `r` owns shard `r`.
    /// Each rank's verdict (unsharded, the standard shard, another) is
    /// all-gathered, so every rank agrees or every rank fails.
    fn agree_shards(
        &mut self,
        layout: &crate::layout::ParamLayout,
        shards: &[Option<&[bool]>],
    ) -> Result<Option<Vec<usize>>> {
        let (rank, size) = (self.comm.rank() as usize, self.comm.size() as usize);
        let standard = crate::pool::shard_tensors(layout, size);
        let verdict: u64 = match shards {
            [None] => 0,
            [Some(m)]
                if m.len() == standard.len()
                    && m.iter().zip(&standard).all(|(&b, &o)| b == (o == rank)) =>
            {
                1
            }
            _ => 2,
        };
        let mut all = vec![0u64; size];
        self.comm.all_gather_into(&[verdict][..], &mut all[..]);
        if all.iter().all(|&v| v == 0) {
            return Ok(None);
        }
        if all.iter().all(|&v| v == 1) {
            return Ok(Some(standard));
        }
        let what = |v: u64| match v {
            0 => "an unsharded optimizer",
            1 => "its shard of pool::shard_tensors",
            _ => "another shard",
        };
        let r = all
            .iter()
            .position(|&v| v != all[0])
            .unwrap_or_else(|| all.iter().position(|&v| v != 1).unwrap_or(0));
        Err(Error::mismatch(format!(
            "rank {r} holds {} and rank 0 {}: over MPI every rank must hold its shard of \
             pool::shard_tensors (DevicePool::replicate_sharded's partition), or none",
            what(all[r]),
            what(all[0]),
        )))
    }

    /// Every rank reads the params of its shard, the ranks agree that all
    /// reads succeeded, then one `MPI_Allgatherv` of the shards' bytes (each
    /// tensor padded to 4-byte words) and each rank writes the others'.
    fn gather_params(&mut self, local: &[Participant<'_>], owners: &[usize]) -> Result<()> {
        use mpi::datatype::PartitionMut;
        let rank = self.comm.rank() as usize;
        let size = self.comm.size() as usize;
        let Some(&(gpu, params)) = local.first() else {
            let e = Error::invalid(
                "replicas",
                0,
                "exactly 1 per MPI rank",
                "MpiCommunicator drives one device per rank",
            );
            return self.agree(Err(e));
        };
        let b = params.param_dtype().bytes();
        let tensors = params.layout().tensors();
        let words = |k: usize| (tensors[k].numel * b).div_ceil(4);
        let mut counts = vec![0u64; size];
        for (k, &o) in owners.iter().enumerate() {
            counts[o] += words(k);
        }
        let mine: Vec<usize> = (0..owners.len()).filter(|&k| owners[k] == rank).collect();
        let read = if std::mem::take(&mut self.gather_fault) {
            Err(super::shard::injected_read_fault())
        } else if counts.iter().sum::<u64>() > i32::MAX as u64 {
            Err(Error::LimitExceeded {
                limit: "MPI count (i32 words) of one all-gather".into(),
                needed: counts.iter().sum(),
                available: i32::MAX as u64,
                hint: "; the params of all shards must fit 8 GiB for one all-gather".into(),
            })
        } else {
            crate::params::read_role_bytes(gpu, &params.params, params.placement(), &mine)
        };
        let bytes = match read {
            Ok(v) => {
                self.agree(Ok(()))?;
                v
            }
            Err(e) => {
                let e = self.local_error("gather params", e);
                return self.agree(Err(e));
            }
        };
        let mut send: Vec<u8> = Vec::with_capacity(counts[rank] as usize * 4);
        for t in &bytes {
            send.extend_from_slice(t);
            send.resize(send.len().next_multiple_of(4), 0);
        }
        let send: Vec<u32> = bytemuck::pod_collect_to_vec(&send);
        let counts32: Vec<i32> = counts.iter().map(|&c| c as i32).collect();
        let displs: Vec<i32> = counts32
            .iter()
            .scan(0i32, |at, &c| {
                let d = *at;
                *at += c;
                Some(d)
            })
            .collect();
        let mut recv = vec![0u32; counts.iter().sum::<u64>() as usize];
        {
            let mut part = PartitionMut::new(&mut recv[..], &counts32[..], &displs[..]);
            self.comm.all_gather_varcount_into(&send[..], &mut part);
        }
        let recv: &[u8] = bytemuck::cast_slice(&recv);
        let mut cursor: Vec<usize> = displs.iter().map(|&d| d as usize * 4).collect();
        let written = gpu.scoped("collective/gather_params", || {
            for (k, &o) in owners.iter().enumerate() {
                let at = cursor[o];
                cursor[o] += words(k) as usize * 4;
                if o != rank {
                    let len = (tensors[k].numel * b) as usize;
                    params
                        .params
                        .write_raw(gpu, params.placement().pieces(k), &recv[at..at + len]);
                }
            }
        });
        let r = written.map_err(|e| self.local_error("gather params", e));
        self.agree(r)
    }

    fn agree(&mut self, outcome: Result<()>) -> Result<()> {
        let mine = [i32::from(outcome.is_err())];
        let mut any = [0i32];
        self.comm
            .all_reduce_into(&mine[..], &mut any[..], SystemOperation::max());
        match outcome {
            Err(e) => Err(e),
            Ok(()) if any[0] != 0 => Err(self.peer_failed("agreement")),
            Ok(()) => Ok(()),
        }
    }

    fn inject_fault(&mut self, device: usize, bucket: usize) {
        self.fault = Some(Fault { device, bucket });
    }

    /// During the next gather, reading this rank's shard fails (`device`
    /// is 0, the rank's one device); every rank then returns the error.
    fn inject_gather_fault(&mut self, device: usize) {
        self.gather_fault = device == 0;
    }
}
