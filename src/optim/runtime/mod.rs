//! The [`Optimizer`]: one optimizer over one [`ParamSet`], built once (state
//! buffers, pipeline, block tables, bind groups), stepped with one uniform
//! write, one compute pass and one submit, and never a readback.
//!
//! The data flow of [`Optimizer::step`]: the host computes each param group's
//! row (`src/optim/<name>/mod.rs`, f64 scalars rounded once) and the
//! `StepInfo` (host gradient factor, t), writes them into the one uniform
//! buffer, and records one compute pass: the gradient pipeline's passes
//! (`crate::grad`, when configured), then one dispatch per chunk (and state
//! format, `optim::state`) of the optimizer kernel (`gpu/common.wgsl` +
//! `optim/prelude.wgsl` + `<name>/update.wgsl` + the generated roles +
//! `optim/single_pass.wgsl`), whose workgroup `b` updates block `b` of the
//! chunk's table. The trust-ratio optimizers (LAMB,
//! LARS) record their three passes instead (`crate::optim::trust`: measure
//! per chunk, one reduce, apply per chunk), Muon its Newton-Schulz products
//! between them, Adafactor its row / column passes before them, in the same
//! compute pass. When param groups run other algorithms
//! (`ParamGroup::algorithm`), each kernel's groups form a part
//! (`part.rs`) that records its own passes after the gradient pipeline's,
//! still in the one compute pass and submit.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, next_id};
use crate::grad::NonFinite;
use crate::grad::device::{GradPipeline, dummy_control};
use crate::layout::{ParamLayout, Placement};
use crate::optim::blocks::block_tables;
use crate::optim::state::{StateDtype, StatePlacement};
use crate::optim::{Algorithm, OptimizerSpec};
use crate::params::{ParamSet, Role};
use crate::precision::{ParamDtype, ParamStorage, ParamUpdate};

pub use crate::optim::blocks::{BLOCK_ELEMS, Dispatch};

mod groups;
mod kernels;
mod master;
mod part;
mod shard;
mod state_access;
mod stats;
mod swap;

use kernels::{Terms, choose_kernel};
use part::Part;

/// Most param groups one optimizer may have (rows of the kernels' uniform
/// table; the crate's own limit, not the device's).
pub const MAX_GROUPS: usize = 256;

/// Where the group rows start in the uniform buffer; `StepInfo` is at 0.
/// 256 is the largest `min_uniform_buffer_offset_alignment` WebGPU allows.
const ROWS_OFFSET: u64 = 256;

/// The first 16 bytes of the uniform buffer, written every step: the one
/// route of the host-side gradient factor into every kernel of the step.
/// Matches WGSL `struct StepInfo` (`gpu/common.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct StepInfo {
    /// Host gradient factor: `set_grad_scale` x 1 / static loss scale.
    pub(crate) grad_scale: f32,
    /// Host step count t (1-based), low 32 bits.
    pub(crate) t: u32,
    /// Host step count t, high 32 bits.
    pub(crate) t_hi: u32,
    /// Stochastic rounding's seed.
    pub(crate) seed: u32,
    /// Each param group's `ParamUpdate::code`, 2 bits per group (group g
    /// at bits `2 (g % 16)` of word `g / 16`).
    pub(crate) modes: [[u32; 4]; 4],
}

pub(super) struct ChunkDispatch {
    /// The optimizer kernel for this table's state format.
    kernel: Arc<Kernel>,
    /// That format.
    dtype: StateDtype,
    /// What the kernel assumes of this table.
    table: kernels::TableSpec,
    bind_group: wgpu::BindGroup,
    /// Schedule-Free's eval and train swaps over the same blocks.
    swap_bind_groups: Option<(wgpu::BindGroup, wgpu::BindGroup)>,
    /// The measure pass of a trust-ratio optimizer over the same blocks.
    measure_bind_group: Option<wgpu::BindGroup>,
    /// The gradient-statistics pass over the same blocks, when configured.
    stats_bind_group: Option<wgpu::BindGroup>,
    grid: (u32, u32),
}

/// Where [`Optimizer::step`] writes GPU timestamps at the beginning and the
/// end of its compute pass (benchmarks). The device needs
/// `Features::TIMESTAMP_QUERY`, and `query_set` must be a timestamp query
/// set of that device with both indices in range.
#[derive(Debug, Clone)]
pub struct PassTimestamps {
    /// A `QueryType::Timestamp` query set.
    pub query_set: wgpu::QuerySet,
    /// The index written when the pass begins.
    pub begin: u32,
    /// The index written when the pass ends.
    pub end: u32,
}

/// The runtime of one optimizer over one [`ParamSet`]: state buffers,
/// pipeline and bind groups, built once; [`step`](Self::step) writes one
/// small uniform, records one compute pass and submits once.
pub struct Optimizer {
    id: u64,
    gpu_id: u64,
    params_id: u64,
    spec: OptimizerSpec,
    layout: ParamLayout,
    placement: Placement,
    /// Each param group's full config, the base group first.
    groups: Vec<Algorithm>,
    assignment: Vec<usize>,
    /// The part of each param group (`OptimizerSpec::resolve`).
    group_part: Vec<usize>,
    step: u64,
    grad_scale: f64,
    uniform: wgpu::Buffer,
    /// The groups of each kernel: one part unless a param group runs
    /// another algorithm.
    parts: Vec<Part>,
    grad: Option<GradPipeline>,
    /// Whether the params hold Schedule-Free's evaluation weights `x`.
    eval_mode: bool,
    pass_timestamps: Option<PassTimestamps>,
    /// How the params and grads are stored, and whether a master exists.
    storage: ParamStorage,
    /// Each group's `ParamUpdate`, and their codes as `StepInfo` holds them.
    param_updates: Vec<ParamUpdate>,
    modes: [[u32; 4]; 4],
    /// The f32 master weights of the groups that keep them (the param
    /// placement; other tensors' places unused).
    master: Option<Role>,
    /// The params' host-write count the masters were last loaded at.
    master_synced: u64,
    /// The tensors this optimizer owns, when it holds a shard
    /// (`Optimizer::sharded`).
    owned: Option<Vec<bool>>,
    /// The statistics pass's tables of the tensors it does not own.
    stats_tables: Vec<(wgpu::BindGroup, (u32, u32))>,
    _keep: Vec<wgpu::Buffer>,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("groups", &self.groups)
            .field("gradients", &self.spec.gradients)
            .field("step", &self.step)
            .finish()
    }
}

impl Optimizer {
    /// Validates `spec` against `params`, allocates the state and builds the
    /// pipeline, block tables and bind groups.
    ///
    /// # Errors
    /// Invalid hyperparameters or groups ([`Error::InvalidConfig`]),
    /// `params` from another device ([`Error::WrongDevice`]), or a wgpu error.
    pub fn new(gpu: &Gpu, spec: &OptimizerSpec, params: &ParamSet) -> Result<Optimizer> {
        Optimizer::with_dispatch(gpu, spec, params, Dispatch::Fused)
    }

    /// Like [`new`](Self::new), choosing how steps are dispatched.
    /// [`Dispatch::PerTensor`] is the unfused baseline for benchmarks.
    pub fn with_dispatch(
        gpu: &Gpu,
        spec: &OptimizerSpec,
        params: &ParamSet,
        mode: Dispatch,
    ) -> Result<Optimizer> {
        Optimizer::build(gpu, spec, params, mode, None)
    }

    /// An optimizer that owns the tensors marked in `owned` (one flag per
    /// tensor of the layout, ZeRO stage 1): it keeps optimizer states (and
    /// f32 master weights) for those only and its steps update only them,
    /// while clipping, the non-finite guard and the loss scale still see
    /// every tensor's gradient, so an owned tensor's update is bitwise the
    /// unsharded optimizer's. `DevicePool::replicate_sharded` builds one per
    /// device over the tensors of its shard, and `DataParallel::step`
    /// gathers the updated params from their owners.
    ///
    /// # Errors
    /// As [`new`](Self::new), and a mask of another length than the
    /// layout's tensors.
    pub fn sharded(
        gpu: &Gpu,
        spec: &OptimizerSpec,
        params: &ParamSet,
        owned: &[bool],
    ) -> Result<Optimizer> {
        if owned.len() != params.layout().len() {
            return Err(Error::mismatch(format!(
                "the shard marks {} tensors, but the layout has {}",
                owned.len(),
                params.layout().len()
            )));
        }
        if spec.algorithm().algo().swap_weights().is_some() {
            return Err(Error::invalid(
                "algorithm",
                spec.algorithm().name(),
                "an optimizer without an eval swap",
                "Schedule-Free's eval mode swaps every tensor on every replica, which a shard \
                 cannot do for the tensors it does not own: run it unsharded",
            ));
        }
        Optimizer::build(gpu, spec, params, Dispatch::Fused, Some(owned))
    }

    fn build(
        gpu: &Gpu,
        spec: &OptimizerSpec,
        params: &ParamSet,
        mode: Dispatch,
        owned: Option<&[bool]>,
    ) -> Result<Optimizer> {
        gpu.check_same("the ParamSet", params.gpu_id())?;
        let layout = params.layout().clone();
        let resolved = spec.resolve(&layout)?;
        let (groups, assignment) = (&resolved.groups, &resolved.assignment);
        let placement = params.placement().clone();
        let numels: Vec<u64> = layout.tensors().iter().map(|t| t.numel).collect();
        let param_updates = check_param_updates(&resolved.param_updates, params)?;
        check_f16_grads(spec, params)?;
        let storage = ParamStorage {
            param: params.param_dtype(),
            grad: params.grad_dtype(),
            master: param_updates.contains(&ParamUpdate::MasterWeights),
        };
        let mut modes = [[0u32; 4]; 4];
        for (g, u) in param_updates.iter().enumerate() {
            modes[g / 64][(g / 16) % 4] |= u.code() << (2 * (g % 16));
        }
        // Each part's tensors, states and block tables, numbered one part
        // after the other (a part's trust segments stay consecutive).
        let n_parts = resolved.parts.iter().max().map_or(1, |p| p + 1);
        let mut plans = Vec::with_capacity(n_parts);
        // With a shard: the blocks of the tensors it does not own, by chunk,
        // for the statistics pass only.
        let mut stats_only: Vec<(usize, Vec<crate::optim::blocks::Block>)> = Vec::new();
        let mut n_blocks = 0u32;
        for p in 0..n_parts {
            let lead = resolved
                .parts
                .iter()
                .position(|&q| q == p)
                .expect("a group");
            let included: Vec<bool> = assignment.iter().map(|&g| resolved.parts[g] == p).collect();
            // The states of the tensors marked in `inc`.
            let place = |inc: &[bool]| {
                StatePlacement::of_tensors(
                    &placement,
                    &numels,
                    assignment,
                    &resolved.state_dtypes,
                    spec.min_8bit_size,
                    inc,
                )
            };
            let states = place(&included);
            let (tables, n) = block_tables(&placement, &states, assignment, mode, n_blocks);
            let plan = part::Plan {
                lead,
                numbered: included.clone(),
                included,
                states,
                tables,
                first: n_blocks,
            };
            plans.push(match owned {
                Some(owned) => {
                    let mine: Vec<bool> = plan
                        .numbered
                        .iter()
                        .zip(owned)
                        .map(|(&a, &b)| a && b)
                        .collect();
                    let (plan, others) = shard::own(plan, owned, &placement, place(&mine));
                    stats_only.extend(others);
                    plan
                }
                None => plan,
            });
            n_blocks += n;
        }
        // The uniform buffer: StepInfo, then each part's rows, indexed by
        // the global group number (`uniform_bytes`).
        // Each part's rows take the space of the groups there are; its
        // binding declares MAX_GROUPS rows and so may reach over the next
        // parts' rows, which it never reads.
        let row_lens: Vec<u64> = plans
            .iter()
            .map(|plan| groups[plan.lead].algo().row(1).len() as u64)
            .collect();
        let mut rows_offsets = Vec::with_capacity(n_parts);
        let mut end = ROWS_OFFSET;
        for &len in &row_lens {
            rows_offsets.push(end);
            end = (end + len * groups.len() as u64).next_multiple_of(256);
        }
        let uniform_size = row_lens
            .iter()
            .zip(&rows_offsets)
            .map(|(&len, &o)| o + len * MAX_GROUPS as u64)
            .max()
            .unwrap_or(ROWS_OFFSET);
        let name = spec.algorithm.name();
        let built = gpu.scoped(&format!("optim/{name}/new"), || -> Result<_> {
            let uniform = gpu.create_buffer(
                &format!("optim/{name}/uniform"),
                uniform_size,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            let grad = GradPipeline::new(
                gpu,
                spec.gradients,
                groups.len(),
                n_blocks,
                &uniform,
                storage.grad,
            )?;
            let control = match &grad {
                Some(g) => g.control.clone(),
                None => dummy_control(gpu),
            };
            let master = storage.master.then(|| {
                Role::zeroed(
                    gpu,
                    &format!("optim/{name}/master"),
                    &placement,
                    ParamDtype::F32,
                )
            });
            let shared = part::Shared {
                gpu,
                spec,
                params,
                layout: &layout,
                placement: &placement,
                groups,
                assignment,
                state_dtypes: &resolved.state_dtypes,
                uniform: &uniform,
                control: &control,
                grad: grad.as_ref(),
                n_blocks,
                storage,
                master: master.as_ref(),
            };
            let mut parts = Vec::with_capacity(n_parts);
            for (p, plan) in plans.into_iter().enumerate() {
                let terms = Terms::of_part(groups, &resolved.parts, p);
                parts.push(Part::build(&shared, plan, rows_offsets[p], terms)?);
            }
            let mut keep = vec![control];
            // The other shards' blocks, for the statistics pass.
            let mut stats_tables = Vec::new();
            if let Some(gp) = &grad {
                let max_dim = gpu.limits().max_compute_workgroups_per_dimension;
                for (c, blocks) in &stats_only {
                    let table = gpu.create_buffer_init(
                        &format!("optim/{name}/stats-only/chunk{c}"),
                        bytemuck::cast_slice(blocks),
                        wgpu::BufferUsages::STORAGE,
                    );
                    let bg = gp.bind_chunk(gpu, *c, &uniform, &table, &params.grads.buffers[*c]);
                    stats_tables.push((bg, crate::gpu::grid(blocks.len() as u32, max_dim)));
                    keep.push(table);
                }
            }
            Ok((uniform, parts, grad, keep, master, stats_tables))
        })??;
        let (uniform, parts, grad, keep, master, stats_tables) = built;
        let mut opt = Optimizer {
            id: next_id(),
            gpu_id: gpu.id(),
            params_id: params.id(),
            spec: spec.clone(),
            layout,
            placement,
            groups: resolved.groups,
            assignment: resolved.assignment,
            group_part: resolved.parts,
            step: 0,
            grad_scale: 1.0,
            uniform,
            parts,
            grad,
            eval_mode: false,
            pass_timestamps: None,
            storage,
            param_updates,
            modes,
            master,
            master_synced: 0,
            owned: owned.map(<[bool]>::to_vec),
            stats_tables,
            _keep: keep,
        };
        opt.reload_master(gpu, params)?;
        Ok(opt)
    }

    /// Fails unless `gpu` is this optimizer's device and `params` the
    /// ParamSet it was built for.
    pub(crate) fn check_params(&self, gpu: &Gpu, params: &ParamSet) -> Result<()> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        gpu.check_same("the ParamSet", params.gpu_id())?;
        if params.id() != self.params_id {
            return Err(Error::mismatch(format!(
                "this optimizer was built for ParamSet #{}, not #{}",
                self.params_id,
                params.id()
            )));
        }
        Ok(())
    }

    /// The bytes of the uniform buffer for step `t`: `StepInfo`, padding,
    /// then one row per param group of `groups`.
    fn uniform_bytes(&self, t: u64, groups: &[Algorithm]) -> Vec<u8> {
        let info = StepInfo {
            grad_scale: (self.grad_scale * self.spec.gradients.static_factor()) as f32,
            t: t as u32,
            t_hi: (t >> 32) as u32,
            seed: self.spec.rounding_seed,
            modes: self.modes,
        };
        let mut bytes = bytemuck::bytes_of(&info).to_vec();
        bytes.resize(ROWS_OFFSET as usize, 0);
        // Group g's row at its part's offset + g rows of that part.
        for (g, cfg) in groups.iter().enumerate() {
            let part = &self.parts[self.group_part[g]];
            let at = (part.rows_offset + g as u64 * part.row_len) as usize;
            let row = cfg.algo().row(t);
            debug_assert_eq!(row.len() as u64, part.row_len);
            if bytes.len() < at + row.len() {
                bytes.resize(at + row.len(), 0);
            }
            bytes[at..at + row.len()].copy_from_slice(&row);
        }
        bytes
    }

    /// Applies one step to every tensor: one uniform write, one compute pass
    /// with one dispatch per chunk (LAMB and LARS: two per chunk and one
    /// more; Muon and Adafactor a few more, [`dispatches_per_step`]; each
    /// part's when param groups run other algorithms; plus the gradient
    /// pipeline's passes when clipping, the guard or loss scaling are
    /// configured), one submit. Never waits for the GPU.
    ///
    /// [`dispatches_per_step`]: Self::dispatches_per_step
    ///
    /// # Errors
    /// Schedule-Free in eval mode (call [`train`](Self::train) first).
    /// A `params` other than the one the optimizer was built for, another
    /// device, or a wgpu error; the step count is unchanged then. With
    /// [`NonFinite::Error`], [`Error::NonFinite`] once the host has learned
    /// that an earlier step was skipped (the skipped step changed nothing).
    pub fn step(&mut self, gpu: &Gpu, params: &mut ParamSet) -> Result<()> {
        self.check_params(gpu, params)?;
        let error_mode = self.spec.gradients.nonfinite == NonFinite::Error;
        let n_groups = self.groups.len();
        if error_mode && let Some(gp) = self.grad.as_mut() {
            gp.poll_observe(gpu, n_groups)?;
        }
        let t = self.step.checked_add(1).ok_or_else(|| {
            Error::invalid(
                "step",
                self.step,
                "a step count below u64::MAX",
                "the step count cannot grow past u64::MAX",
            )
        })?;
        if self.eval_mode {
            return Err(Error::invalid(
                "mode",
                "eval",
                "train mode: call train() before step()",
                "Optimizer was not in train mode when step is called",
            ));
        }
        self.sync_master(gpu, params)?;
        for p in 0..self.parts.len() {
            let terms = Terms::of_part(&self.groups, &self.group_part, p);
            let needed = terms.union(self.parts[p].terms);
            if needed != self.parts[p].terms {
                self.rebuild_kernels(gpu, p, needed)?;
            }
        }
        // Running state (Schedule-Free's averaging weights) of step t,
        // kept only once the step is submitted; optimizers without one
        // skip the copy.
        let running = self.groups.iter().any(|g| !g.algo().running().is_empty());
        let advanced = running.then(|| {
            let mut groups = self.groups.clone();
            for g in &mut groups {
                g.algo_mut().advance(t);
            }
            groups
        });
        let bytes = self.uniform_bytes(t, advanced.as_deref().unwrap_or(&self.groups));
        let request_read = error_mode && self.grad.as_ref().is_some_and(|g| g.read_idle());
        let submission = gpu.scoped(self.spec.algorithm.name(), || {
            gpu.queue().write_buffer(&self.uniform, 0, &bytes);
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("optim/step"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("optim/step"),
                    timestamp_writes: self.pass_timestamps.as_ref().map(|t| {
                        wgpu::ComputePassTimestampWrites {
                            query_set: &t.query_set,
                            beginning_of_pass_write_index: Some(t.begin),
                            end_of_pass_write_index: Some(t.end),
                        }
                    }),
                });
                if let Some(gp) = &self.grad {
                    gp.record(
                        &mut pass,
                        self.parts
                            .iter()
                            .flat_map(|p| &p.dispatches)
                            .filter_map(|d| d.stats_bind_group.as_ref().map(|bg| (bg, d.grid)))
                            .chain(self.stats_tables.iter().map(|(bg, g)| (bg, *g))),
                    );
                }
                for part in &self.parts {
                    part.record(&mut pass);
                }
            }
            if request_read && let Some(gp) = &self.grad {
                gp.record_copy(&mut enc);
            }
            gpu.queue().submit([enc.finish()])
        })?;
        self.step = t;
        if let Some(groups) = advanced {
            self.groups = groups;
        }
        if request_read && let Some(gp) = self.grad.as_mut() {
            gp.map_staging(submission, t);
        }
        Ok(())
    }

    /// Makes every later [`step`](Self::step) write GPU timestamps around
    /// its compute pass (all of its dispatches, the gradient pipeline's
    /// included), or stops it with `None`. For benchmarks; the step does not
    /// resolve or read the queries. A query set the device cannot use makes
    /// the next `step` fail with [`Error::Gpu`].
    pub fn set_pass_timestamps(&mut self, timestamps: Option<PassTimestamps>) {
        self.pass_timestamps = timestamps;
    }

    /// Number of steps taken (PyTorch's `state["step"]`).
    pub fn step_count(&self) -> u64 {
        self.step
    }
    /// Sets the step count, e.g. when resuming from a checkpoint.
    pub fn set_step_count(&mut self, step: u64) {
        self.step = step;
    }
    /// The spec the optimizer was built from (the base group's config as
    /// built; later `set_lr` / `set_momentum` calls change the groups).
    pub fn spec(&self) -> &OptimizerSpec {
        &self.spec
    }
    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Number of optimizer dispatches one step records: one per chunk when
    /// fused; a trust-ratio optimizer (LAMB, LARS) records two per chunk
    /// and one more; Muon as many plus `3 x ns_steps` products; Adafactor
    /// three per chunk and two more; each part's, when param groups run
    /// several algorithms. The gradient pipeline's passes are not counted.
    pub fn dispatches_per_step(&self) -> usize {
        self.parts.iter().map(Part::dispatches_per_step).sum()
    }
    /// The algorithm's name (`adamw`, ...), or the names of the algorithms
    /// the param groups run, in the order of their first group, joined by
    /// `+` (`muon+adamw`).
    pub fn algorithm_name(&self) -> String {
        let names: Vec<&str> = self
            .parts
            .iter()
            .map(|p| self.groups[p.lead].name())
            .collect();
        names.join("+")
    }
    /// Multiplies every gradient by `scale` inside the update (gradient
    /// accumulation or data-parallel averaging; 1 by default). No extra pass.
    ///
    /// # Errors
    /// `scale` not finite in f32 (with a static loss scale folded in).
    pub fn set_grad_scale(&mut self, scale: f64) -> Result<()> {
        let folded = scale * self.spec.gradients.static_factor();
        if !folded.is_finite() || folded.abs() > f32::MAX as f64 {
            return Err(Error::invalid(
                "grad_scale",
                scale,
                "a number finite in f32 (with the static loss scale folded in)",
                "Invalid grad_scale value",
            ));
        }
        self.grad_scale = scale;
        Ok(())
    }
}

/// f16 gradients overflow at 65504 and underflow below 6e-8: with
/// [`NonFinite::Error`] (the user asked to hear of an overflow) they need a
/// loss scale, as torch's GradScaler; without one the error would be the
/// usual outcome, not a fault.
fn check_f16_grads(spec: &OptimizerSpec, params: &ParamSet) -> Result<()> {
    if params.grad_dtype() == ParamDtype::F16
        && spec.gradients.nonfinite == NonFinite::Error
        && spec.gradients.loss_scale.is_none()
    {
        return Err(Error::invalid(
            "gradients.loss_scale",
            "none",
            "a static or dynamic loss scale (OptimizerSpec::loss_scale) with f16 gradients and \
             NonFinite::Error",
            "f16 gradients overflow at 65504 and vanish below 6e-8: scale the loss \
             (LossScale::Dynamic, as torch.amp.GradScaler) or store the gradients as bf16",
        ));
    }
    Ok(())
}

/// Each group's param update, checked against the params' dtype: with f32
/// params only [`ParamUpdate::RoundNearest`] applies.
fn check_param_updates(updates: &[ParamUpdate], params: &ParamSet) -> Result<Vec<ParamUpdate>> {
    if params.param_dtype() == ParamDtype::F32
        && let Some(g) = updates.iter().position(|&u| u != ParamUpdate::RoundNearest)
    {
        // A group that inherits the base's update is never the first: the
        // base (group 0) is.
        let field = match g {
            0 => "param_update".to_string(),
            _ => format!("groups[{g}].param_update"),
        };
        return Err(Error::invalid(
            field,
            updates[g].as_str(),
            "nearest (the ParamSet holds f32 params; master weights and stochastic rounding \
             need bf16 or f16 params: ParamSet::with_options)",
            format!(
                "param group {g} asks for {} updates of f32 params",
                updates[g].as_str()
            ),
        ));
    }
    Ok(updates.to_vec())
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_common_struct, rust_struct};

    #[test]
    fn step_info_matches_its_wgsl_struct() {
        assert_common_struct(
            "StepInfo",
            rust_struct!(super::StepInfo {
                grad_scale,
                t,
                t_hi,
                seed,
                modes
            }),
        );
    }
}
