//! Data-parallel training: a [`DevicePool`] of devices in this process, and
//! [`DataParallel`], which keeps one replica (parameters, gradients,
//! optimizer) per device and steps them together after an all-reduce of the
//! gradients.
//!
//! ```no_run
//! use wgpu_optim::pool::DevicePool;
//! use wgpu_optim::optim::{AdamConfig, OptimizerSpec};
//! use wgpu_optim::ParamLayout;
//!
//! # fn main() -> wgpu_optim::Result<()> {
//! let pool = DevicePool::logical(2)?;               // 2 devices on one adapter
//! let layout = ParamLayout::new(&[("w", &[64, 8][..]), ("b", &[8][..])])?;
//! let mut dp = pool.replicate(&layout, &OptimizerSpec::adam(AdamConfig::default()))?;
//! dp.replica_mut(0).write_params("w", &vec![0.1; 512])?;
//! dp.broadcast_params_from_0()?;                    // replicas start bitwise equal
//! for step in 0..10 {
//!     for r in 0..dp.len() {
//!         // each replica's backward pass on its shard writes its gradients
//!         dp.replica_mut(r).write_grad("w", &vec![0.01; 512])?;
//!         dp.replica_mut(r).write_grad("b", &vec![0.0; 8])?;
//!     }
//!     dp.step()?;                                   // all-reduce (mean), then one step each
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::collective::{CollectiveConfig, Communicator, LocalCommunicator, ReduceOp};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, instance_for};
use crate::layout::ParamLayout;
use crate::optim::{Optimizer, OptimizerSpec};
use crate::params::{ParamSet, ParamSetOptions};

/// The devices of a data-parallel job in this process.
#[derive(Debug, Clone)]
pub struct DevicePool {
    gpus: Vec<Gpu>,
}

impl DevicePool {
    /// `n` logical devices on the first Vulkan adapter: several devices of
    /// one physical GPU, or simulated GPUs on lavapipe for tests and CI.
    /// (The GL backend cannot share a process between devices.)
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for `n == 0`, [`Error::NoAdapter`] without a
    /// Vulkan adapter, or the device creation error.
    pub fn logical(n: usize) -> Result<DevicePool> {
        if n == 0 {
            return Err(Error::invalid(
                "n",
                n,
                ">= 1",
                "a device pool needs at least one device",
            ));
        }
        let instance = instance_for(wgpu::Backends::VULKAN);
        let adapter =
            pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
                .map_err(|e| Error::NoAdapter {
                reason: format!("no Vulkan adapter for a logical device pool: {e}"),
            })?;
        let gpus = (0..n)
            .map(|_| Gpu::from_adapter(&adapter))
            .collect::<Result<Vec<_>>>()?;
        Ok(DevicePool { gpus })
    }

    /// One device on every adapter of the primary backends (Vulkan, Metal,
    /// DX12) that `filter` accepts, in enumeration order: all GPUs of the
    /// machine (`|_| true`), or a chosen subset (e.g. by
    /// `info.device_type` or `info.name`).
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when no adapter is accepted; the first device
    /// creation error otherwise.
    pub fn adapters(filter: impl Fn(&wgpu::AdapterInfo) -> bool) -> Result<DevicePool> {
        let backends = wgpu::Backends::PRIMARY;
        let instance = instance_for(backends);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let gpus = adapters
            .iter()
            .filter(|a| filter(&a.get_info()))
            .map(Gpu::from_adapter)
            .collect::<Result<Vec<_>>>()?;
        if gpus.is_empty() {
            return Err(Error::NoAdapter {
                reason: format!("no adapter selected for the pool among {names:?}"),
            });
        }
        Ok(DevicePool { gpus })
    }

    /// Every adapter of the primary backends: `adapters(|_| true)`.
    ///
    /// # Errors
    /// As [`adapters`](Self::adapters).
    pub fn all_adapters() -> Result<DevicePool> {
        DevicePool::adapters(|_| true)
    }

    /// A pool of devices the caller opened.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `gpus` is empty or holds one device twice.
    pub fn from_gpus(gpus: Vec<Gpu>) -> Result<DevicePool> {
        if gpus.is_empty() {
            return Err(Error::invalid(
                "gpus",
                0,
                ">= 1 device",
                "a device pool needs at least one device",
            ));
        }
        for (i, g) in gpus.iter().enumerate() {
            if gpus[..i].iter().any(|h| h.id() == g.id()) {
                return Err(Error::invalid(
                    "gpus",
                    format!("device #{} twice", g.id()),
                    "distinct devices",
                    "each replica needs its own device",
                ));
            }
        }
        Ok(DevicePool { gpus })
    }

    /// The devices.
    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus
    }
    /// Number of devices.
    pub fn len(&self) -> usize {
        self.gpus.len()
    }
    /// Always false: a pool has at least one device.
    pub fn is_empty(&self) -> bool {
        self.gpus.is_empty()
    }
    /// Bounds every wait for the GPU of every device (also those of the
    /// all-reduce), for replicas built after this call.
    pub fn set_wait_timeout(&mut self, timeout: Duration) {
        for g in &mut self.gpus {
            g.set_wait_timeout(timeout);
        }
    }

    /// A replica of `layout` and `spec` on every device, with the default
    /// in-process communicator ([`ReduceOp::Mean`], default buckets).
    ///
    /// # Errors
    /// Invalid `spec`, or a device error.
    pub fn replicate(&self, layout: &ParamLayout, spec: &OptimizerSpec) -> Result<DataParallel> {
        self.replicate_with(layout, spec, CollectiveConfig::default())
    }

    /// Like [`replicate`](Self::replicate) with the params' and grads'
    /// dtypes and chunks of `options` on every device
    /// ([`Replica::with_options`]).
    ///
    /// # Errors
    /// Invalid `spec` or `options`, or a device error.
    pub fn replicate_as(
        &self,
        layout: &ParamLayout,
        spec: &OptimizerSpec,
        options: ParamSetOptions,
    ) -> Result<DataParallel> {
        self.replicate_each(CollectiveConfig::default(), |_, g| {
            Replica::with_options(g, layout, spec, options)
        })
    }

    /// One replica per device, `make(r, gpu)` building device `r`'s, joined
    /// by the in-process communicator with `config`.
    fn replicate_each(
        &self,
        config: CollectiveConfig,
        make: impl Fn(usize, Gpu) -> Result<Replica>,
    ) -> Result<DataParallel> {
        let comm = LocalCommunicator::new(config)?;
        let replicas = self
            .gpus
            .iter()
            .enumerate()
            .map(|(r, g)| make(r, g.clone()))
            .collect::<Result<Vec<_>>>()?;
        DataParallel::new(replicas, Box::new(comm))
    }

    /// Like [`replicate_as`](Self::replicate_as) with the optimizer state
    /// sharded over the devices (ZeRO stage 1): the tensors are cut into
    /// [`shard_tensors`] contiguous shards of about equal size, device `r`
    /// keeps the optimizer states of shard `r` only and updates only its
    /// tensors ([`Optimizer::sharded`]), and [`DataParallel::step`]
    /// gathers the updated params from their owners. Adam holds 8 + 8 / N
    /// bytes per parameter on each device instead of 16; every replica's
    /// params stay bitwise those of the unsharded run.
    ///
    /// # Errors
    /// Invalid `spec` or `options`, or a device error.
    pub fn replicate_sharded(
        &self,
        layout: &ParamLayout,
        spec: &OptimizerSpec,
        options: ParamSetOptions,
    ) -> Result<DataParallel> {
        let owners = shard_tensors(layout, self.gpus.len());
        self.replicate_each(CollectiveConfig::default(), |r, g| {
            let owned: Vec<bool> = owners.iter().map(|&o| o == r).collect();
            Replica::sharded(g, layout, spec, options, &owned)
        })
    }

    /// Like [`replicate`](Self::replicate) with collective options.
    ///
    /// # Errors
    /// Invalid `spec` or `config`, or a device error.
    pub fn replicate_with(
        &self,
        layout: &ParamLayout,
        spec: &OptimizerSpec,
        config: CollectiveConfig,
    ) -> Result<DataParallel> {
        self.replicate_each(config, |_, g| Replica::new(g, layout, spec))
    }
}

/// One device's copy of the model: its device, parameters and gradients,
/// and optimizer.
#[derive(Debug)]
pub struct Replica {
    /// The device.
    pub gpu: Gpu,
    /// Parameters and gradients on `gpu`.
    pub params: ParamSet,
    /// The optimizer over `params`.
    pub opt: Optimizer,
}

impl Replica {
    /// Allocates `layout` and builds `spec` on `gpu`.
    ///
    /// # Errors
    /// Invalid `spec`, or a device error.
    pub fn new(gpu: Gpu, layout: &ParamLayout, spec: &OptimizerSpec) -> Result<Replica> {
        Replica::with_options(gpu, layout, spec, ParamSetOptions::default())
    }
    /// Like [`new`](Self::new) with the params' and grads' dtypes and
    /// chunks of `options` (bf16 gradients halve the bytes the all-reduce
    /// moves between devices and host; the host sums in f32 and rounds once).
    ///
    /// # Errors
    /// As [`ParamSet::with_options`] and [`Optimizer::new`].
    pub fn with_options(
        gpu: Gpu,
        layout: &ParamLayout,
        spec: &OptimizerSpec,
        options: ParamSetOptions,
    ) -> Result<Replica> {
        let params = ParamSet::with_options(&gpu, layout, options)?;
        let opt = Optimizer::new(&gpu, spec, &params)?;
        Ok(Replica { gpu, params, opt })
    }
    /// Like [`with_options`](Self::with_options) with an optimizer that
    /// owns the tensors marked in `owned` ([`Optimizer::sharded`]).
    ///
    /// # Errors
    /// As [`with_options`](Self::with_options), and a mask of another
    /// length than the layout's tensors.
    pub fn sharded(
        gpu: Gpu,
        layout: &ParamLayout,
        spec: &OptimizerSpec,
        options: ParamSetOptions,
        owned: &[bool],
    ) -> Result<Replica> {
        let params = ParamSet::with_options(&gpu, layout, options)?;
        let opt = Optimizer::sharded(&gpu, spec, &params, owned)?;
        Ok(Replica { gpu, params, opt })
    }
    /// Uploads parameter tensor `name`.
    ///
    /// # Errors
    /// As [`ParamSet::write`].
    pub fn write_params(&mut self, name: &str, data: &[f32]) -> Result<()> {
        self.params.write(&self.gpu, name, data)
    }
    /// Uploads the gradient of tensor `name`.
    ///
    /// # Errors
    /// As [`ParamSet::write_grad`].
    pub fn write_grad(&mut self, name: &str, data: &[f32]) -> Result<()> {
        self.params.write_grad(&self.gpu, name, data)
    }
    /// Downloads every parameter tensor, in layout order.
    ///
    /// # Errors
    /// A device error.
    pub fn read_params(&self) -> Result<Vec<Vec<f32>>> {
        self.params.read_all(&self.gpu)
    }
}

/// Replicas stepped together: [`step`](Self::step) all-reduces the
/// gradients ([`ReduceOp::Mean`] by default), then applies one optimizer
/// step on every replica (one submit each).
///
/// All or nothing: the gradients of every bucket are reduced on every
/// participant before any replica steps; if anything fails (a map, a wait
/// past the timeout, a lost device, a peer rank), `step` returns an error on
/// every participant and no replica steps.
pub struct DataParallel {
    replicas: Vec<Replica>,
    comm: Box<dyn Communicator>,
    op: ReduceOp,
    user_scale: f64,
    /// Each tensor's owning replica, when the optimizer state is sharded.
    owners: Option<Vec<usize>>,
    /// Why the replicas may differ (a step that failed after the
    /// all-reduce), until they are restored from one checkpoint.
    diverged: Option<Error>,
}

/// The owner (0..n) of each tensor of `layout` when the tensors are cut
/// into `n` contiguous shards of about equal numbers of elements (whole
/// tensors, as PyTorch's `ZeroRedundancyOptimizer` partitions parameters,
/// so per-tensor optimizers — LAMB, LARS, Muon, Adafactor — shard too):
/// tensor `k` goes to the shard that holds its middle element in an even
/// cut of the flat element count. A shard may be empty (more devices than
/// tensors).
pub fn shard_tensors(layout: &ParamLayout, n: usize) -> Vec<usize> {
    let n = n.max(1) as u128;
    let total = layout.numel().max(1) as u128;
    let mut at = 0u128;
    layout
        .tensors()
        .iter()
        .map(|t| {
            let mid = 2 * at + t.numel as u128;
            at += t.numel as u128;
            ((mid * n) / (2 * total)).min(n - 1) as usize
        })
        .collect()
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("replicas", &self.replicas.len())
            .field("world_size", &self.comm.world_size())
            .field("op", &self.op)
            .finish()
    }
}

impl DataParallel {
    /// Steps `replicas` (the devices of this process) together through
    /// `comm`. Layouts are compared on every participant first.
    ///
    /// # Errors
    /// [`Error::LayoutMismatch`] when layouts differ (here or on a peer),
    /// [`Error::InvalidConfig`] without replicas.
    pub fn new(replicas: Vec<Replica>, mut comm: Box<dyn Communicator>) -> Result<DataParallel> {
        if replicas.is_empty() {
            return Err(Error::invalid(
                "replicas",
                0,
                ">= 1",
                "data parallelism needs at least one replica",
            ));
        }
        let local: Vec<_> = replicas.iter().map(|r| (&r.gpu, &r.params)).collect();
        comm.check_layouts(&local)?;
        let shards: Vec<Option<&[bool]>> = replicas.iter().map(|r| r.opt.shard()).collect();
        let layout = replicas[0].params.layout().clone();
        let agreed = comm.agree_shards(&layout, &shards);
        let owners = comm
            .agree(agreed.as_ref().map(|_| ()).map_err(Clone::clone))
            .and(agreed)?;
        let mut dp = DataParallel {
            replicas,
            comm,
            op: ReduceOp::Mean,
            user_scale: 1.0,
            owners,
            diverged: None,
        };
        dp.apply_scale()?;
        Ok(dp)
    }

    /// Sets how gradients are combined (default [`ReduceOp::Mean`]).
    ///
    /// # Errors
    /// None in practice (the scale is finite).
    pub fn set_reduce_op(&mut self, op: ReduceOp) -> Result<()> {
        self.op = op;
        self.apply_scale()
    }
    /// The reduce op.
    pub fn reduce_op(&self) -> ReduceOp {
        self.op
    }
    /// An extra gradient multiplier (e.g. for gradient accumulation),
    /// combined with the reduce op's `1 / N`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-finite scale.
    pub fn set_grad_scale(&mut self, scale: f64) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::invalid(
                "grad_scale",
                scale,
                "a finite number",
                "Invalid grad_scale value",
            ));
        }
        self.user_scale = scale;
        self.apply_scale()
    }
    fn apply_scale(&mut self) -> Result<()> {
        let s = self.user_scale * self.op.grad_scale(self.comm.world_size());
        for r in &mut self.replicas {
            r.opt.set_grad_scale(s)?;
        }
        Ok(())
    }

    /// Participants in the whole world (all processes).
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }
    /// Replicas in this process.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }
    /// Always false: there is at least one replica.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }
    /// The replicas of this process.
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }
    /// Replica `i` of this process.
    ///
    /// # Panics
    /// When `i >= len()` (an index, like a slice).
    pub fn replica(&self, i: usize) -> &Replica {
        &self.replicas[i]
    }
    /// Replica `i`, to write its gradients or parameters.
    ///
    /// # Panics
    /// When `i >= len()` (an index, like a slice).
    pub fn replica_mut(&mut self, i: usize) -> &mut Replica {
        &mut self.replicas[i]
    }
    /// The replicas, mutably.
    pub fn replicas_mut(&mut self) -> &mut [Replica] {
        &mut self.replicas
    }
    /// The communicator.
    pub fn communicator_mut(&mut self) -> &mut dyn Communicator {
        self.comm.as_mut()
    }
    /// Test hook: the map of `bucket` on local replica `device` fails during
    /// the next all-reduce. Not part of the stable API.
    #[doc(hidden)]
    pub fn inject_fault(&mut self, device: usize, bucket: usize) {
        self.comm.inject_fault(device, bucket);
    }
    /// Test hook: reading local replica `device`'s shard fails during the
    /// next gather of a sharded step. Not part of the stable API.
    #[doc(hidden)]
    pub fn inject_gather_fault(&mut self, device: usize) {
        self.comm.inject_gather_fault(device);
    }

    /// Copies the parameters of world participant 0 to every replica so all
    /// start bitwise equal (optimizer states start equal when built from the
    /// same spec). Waits until written.
    ///
    /// # Errors
    /// [`Error::Collective`] on every participant when one fails.
    pub fn broadcast_params_from_0(&mut self) -> Result<()> {
        let local: Vec<_> = self.replicas.iter().map(|r| (&r.gpu, &r.params)).collect();
        let r = self.comm.broadcast_params(&local);
        self.comm.agree(r)
    }

    /// Replaces every replica's gradients by the world's sum (the reduce op's
    /// scale is applied inside the next step, not here).
    ///
    /// # Errors
    /// [`Error::Collective`] on every participant when one fails.
    pub fn all_reduce_grads(&mut self) -> Result<()> {
        let local: Vec<_> = self.replicas.iter().map(|r| (&r.gpu, &r.params)).collect();
        let mut r = self.comm.all_reduce_sum(&local);
        if r.is_ok() {
            // A device lost after its last upload must stop every replica.
            for (d, rep) in self.replicas.iter().enumerate() {
                if let Err(e) = rep.gpu.check_health() {
                    r = Err(crate::collective::staging::participant_error(d, e));
                    break;
                }
            }
        }
        self.comm.agree(r)
    }

    /// The all-reduce's parts timed alone, one after the other (every
    /// device's downloads, the host sums, the uploads), for benchmarks that
    /// judge the pipelined all-reduce against them; `None` for one replica
    /// or a communicator that cannot split them. The gradients end as
    /// [`all_reduce_grads`](Self::all_reduce_grads) leaves them.
    #[doc(hidden)]
    pub fn time_all_reduce_parts(&mut self) -> Result<Option<crate::collective::PartTimes>> {
        let local: Vec<_> = self.replicas.iter().map(|r| (&r.gpu, &r.params)).collect();
        self.comm.time_parts(&local)
    }

    /// All-reduces the gradients, then applies one optimizer step on every
    /// replica (one submit each; no wait), then, with sharded optimizer
    /// state, gathers each shard's params from its owner. If the all-reduce
    /// fails on any participant, no replica steps.
    ///
    /// A failure after the all-reduce (a replica's step, or the gather) is
    /// returned on every participant, and may leave the replicas different:
    /// the owners of the shards hold their updated params and states, the
    /// other replicas the params of the step before for every shard not
    /// gathered (a failed read writes nothing anywhere). From then on
    /// `step` refuses to run (an [`Error::Collective`] that says why) until
    /// every replica is restored from one checkpoint:
    /// [`checkpoint::load_gathered`](crate::checkpoint::load_gathered), or
    /// each replica's own file with [`checkpoint::load`](crate::checkpoint::load)
    /// followed by [`mark_restored`](Self::mark_restored). Only a failure
    /// before any local replica stepped, seen by this process alone, leaves
    /// the replicas as they were.
    ///
    /// # Errors
    /// [`Error::Collective`] from the all-reduce (nothing stepped) or the
    /// gather, a device error from a step, or the refusal above.
    pub fn step(&mut self) -> Result<()> {
        if let Some(e) = &self.diverged {
            return Err(Error::Collective {
                operation: "step".into(),
                participant: "this process".into(),
                reason: format!(
                    "refused: the replicas may differ since a step failed ({e}); restore every \
                     replica from one checkpoint (checkpoint::load_gathered, or each replica's \
                     checkpoint::load, then DataParallel::mark_restored)"
                ),
            });
        }
        // All or nothing: every replica's optimizer must accept its device
        // and ParamSet (a ParamSet swapped in through `replicas_mut` is
        // refused) before anything is reduced or stepped.
        // Over MPI every rank joins this agreement (one small collective), so
        // a rank that refuses does not leave its peers waiting.
        let mut pre = Ok(());
        for (i, r) in self.replicas.iter().enumerate() {
            if let Err(e) = r.gpu.check_health() {
                pre = Err(crate::collective::staging::participant_error(i, e));
                break;
            }
            if let Err(e) = r.opt.check_params(&r.gpu, &r.params) {
                pre = Err(Error::mismatch(format!(
                    "replica {i}: {e}; no replica stepped"
                )));
                break;
            }
        }
        self.comm.agree(pre)?;
        self.all_reduce_grads()?;
        self.apply_scale()?;
        // A step that fails does not count (nor change anything): the
        // replicas before it stepped, it and those after did not.
        let mut stepped = Ok(());
        let mut ahead = 0;
        for r in &mut self.replicas {
            stepped = r.opt.step(&r.gpu, &mut r.params);
            if stepped.is_err() {
                break;
            }
            ahead += 1;
        }
        let local = stepped.is_err();
        // Every participant learns whether every replica stepped before any
        // gathers: over MPI a rank whose step failed would otherwise leave
        // its peers waiting in the gather's collective.
        let r = self.comm.agree(stepped).and_then(|()| self.gather_params());
        if let Err(e) = &r
            && !(local && ahead == 0 && self.comm.world_size() == self.replicas.len())
        {
            self.diverged = Some(e.clone());
        }
        r
    }

    /// Why [`step`](Self::step) refuses to run (a step that failed after
    /// the all-reduce), or `None`.
    pub fn diverged(&self) -> Option<&Error> {
        self.diverged.as_ref()
    }

    /// Says that every replica was restored from one checkpoint (each
    /// replica's own file with [`checkpoint::load`](crate::checkpoint::load);
    /// [`checkpoint::load_gathered`](crate::checkpoint::load_gathered) calls
    /// this itself), so [`step`](Self::step) runs again after a failed one.
    /// Over MPI every rank restores and calls it.
    pub fn mark_restored(&mut self) {
        self.diverged = None;
    }

    /// With sharded optimizer state: copies each shard's updated params
    /// from its owner to every other replica (through the host, one read
    /// per owner; no wait for the writes, which the next submit on each
    /// device follows). Does nothing otherwise.
    ///
    /// # Errors
    /// A device error reading an owner's params (see [`step`](Self::step)).
    fn gather_params(&mut self) -> Result<()> {
        let Some(owners) = &self.owners else {
            return Ok(());
        };
        let local: Vec<_> = self.replicas.iter().map(|r| (&r.gpu, &r.params)).collect();
        self.comm.gather_params(&local, owners)
    }

    /// The params' gather of a sharded step alone (benchmarks): each
    /// shard's params copied from its owner into the other replicas; does
    /// nothing without sharded state.
    #[doc(hidden)]
    pub fn gather_params_now(&mut self) -> Result<()> {
        self.gather_params()
    }

    /// Each tensor's owner (a world index: the replica in process, the rank
    /// over MPI) when the optimizer state is sharded
    /// ([`DevicePool::replicate_sharded`]), else `None`.
    pub fn shard_owners(&self) -> Option<&[usize]> {
        self.owners.as_deref()
    }

    /// Waits until every replica's submitted work has finished.
    ///
    /// # Errors
    /// A timeout or a lost device.
    pub fn synchronize(&self) -> Result<()> {
        for r in &self.replicas {
            r.gpu.synchronize()?;
        }
        Ok(())
    }
}
