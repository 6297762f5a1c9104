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
//! per chunk, one reduce, apply per chunk), in the same compute pass.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, grid, next_id};
use crate::grad::NonFinite;
use crate::grad::device::{GradPipeline, dummy_control, step_binding};
use crate::layout::{ParamLayout, Placement};
use crate::optim::blocks::{Block, block_tables};
use crate::optim::state::{StateDtype, StatePlacement, States};
use crate::optim::trust::{TrustPasses, segments};
use crate::optim::{Algorithm, OptimizerSpec, Passes, muon};
use crate::params::ParamSet;

pub use crate::optim::blocks::{BLOCK_ELEMS, Dispatch};

mod groups;
mod kernels;
mod state_access;
mod stats;
mod swap;

use kernels::{Terms, choose_kernel};

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
    pub(crate) _pad0: u32,
}

struct ChunkDispatch {
    /// The optimizer kernel for this table's state format.
    kernel: Arc<Kernel>,
    /// That format.
    dtype: StateDtype,
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
    step: u64,
    grad_scale: f64,
    uniform: wgpu::Buffer,
    states: States,
    dispatches: Vec<ChunkDispatch>,
    grad: Option<GradPipeline>,
    /// A trust-ratio optimizer's measure and reduce passes, with the
    /// reduce pass's bind group and grid.
    trust: Option<(TrustPasses, wgpu::BindGroup, (u32, u32))>,
    /// Muon's Newton-Schulz iteration, between the reduce and apply passes.
    muon: Option<muon::Orthogonalize>,
    /// Schedule-Free's eval and train swap pipelines.
    swap: Option<(Arc<Kernel>, Arc<Kernel>)>,
    /// Whether the params hold Schedule-Free's evaluation weights `x`.
    eval_mode: bool,
    /// The penalty terms the kernels were built with.
    terms: Terms,
    pass_timestamps: Option<PassTimestamps>,
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

/// The state buffers, each tensor starting at its group's initial value.
fn allocate_states(
    gpu: &Gpu,
    name: &str,
    placement: &Placement,
    state_placement: StatePlacement,
    groups: &[Algorithm],
    assignment: &[usize],
) -> Result<States> {
    let base = groups[0].algo().kernel();
    let inits: Vec<Vec<f32>> = groups
        .iter()
        .map(|g| {
            g.algo()
                .kernel()
                .active
                .iter()
                .map(|a| a.1 as f32)
                .collect()
        })
        .collect();
    States::new(
        gpu,
        &format!("optim/{name}"),
        placement,
        state_placement,
        &base.active_maps(),
        |s, k| inits[assignment[k]][s],
    )
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
        gpu.check_same("the ParamSet", params.gpu_id())?;
        let layout = params.layout().clone();
        let resolved = spec.resolve(&layout)?;
        let (groups, assignment) = (resolved.groups, resolved.assignment);
        let desc = groups[0].algo().kernel();
        let passes = groups[0].algo().passes();
        let placement = params.placement().clone();
        let numels: Vec<u64> = layout.tensors().iter().map(|t| t.numel).collect();
        let state_placement = StatePlacement::new(
            &placement,
            &numels,
            &assignment,
            &resolved.state_dtypes,
            spec.min_8bit_size,
        );
        let terms = Terms::of(&groups);
        let mut kernels = std::collections::BTreeMap::new();
        for d in state_placement.formats() {
            kernels.insert(
                d,
                choose_kernel(gpu, &desc, (spec, terms), passes, None, d)?,
            );
        }
        let f32_kernel = |phase| {
            choose_kernel(
                gpu,
                &desc,
                (spec, terms),
                Passes::OnePass,
                Some(phase),
                StateDtype::F32,
            )
        };
        let swap = match groups[0].algo().swap_weights() {
            Some(_) => Some((
                f32_kernel(("SWAP_TO_EVAL", 1.0))?,
                f32_kernel(("SWAP_TO_TRAIN", 1.0))?,
            )),
            None => None,
        };
        let (tables, n_blocks) = block_tables(&placement, &state_placement, &assignment, mode);
        let row_len = groups[0].algo().row(1).len() as u64;
        let max_dim = gpu.limits().max_compute_workgroups_per_dimension;
        let name = desc.name;
        // The per-tensor table of the passes that reduce per tensor.
        let matrices = match &groups[0] {
            Algorithm::Muon(c) => {
                let max = gpu.limits().max_storage_buffer_binding_size / 4;
                Some(muon::matrices(c, &layout, &placement, &assignment, max)?)
            }
            _ => None,
        };
        let segs = segments(&placement, &assignment);
        let table: (&[u8], u32) = match &matrices {
            Some((m, _, _)) => (bytemuck::cast_slice(m), m.len() as u32),
            None => (bytemuck::cast_slice(&segs), segs.len() as u32),
        };

        let built = gpu.scoped(&format!("optim/{name}/new"), || -> Result<_> {
            let uniform = gpu.create_buffer(
                &format!("optim/{name}/uniform"),
                ROWS_OFFSET + row_len * MAX_GROUPS as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            let states =
                allocate_states(gpu, name, &placement, state_placement, &groups, &assignment)?;
            // The dynamic maps, for the 8-bit tables only.
            let qmaps = (!states.absmax.is_empty()).then(|| {
                gpu.create_buffer_init(
                    &format!("optim/{name}/qmaps"),
                    bytemuck::cast_slice(&crate::precision::map_bits()),
                    wgpu::BufferUsages::UNIFORM,
                )
            });
            let grad = GradPipeline::new(gpu, spec.gradients, groups.len(), n_blocks, &uniform)?;
            let per_tensor = if passes.per_tensor() {
                Some(TrustPasses::new(
                    gpu,
                    name,
                    table,
                    n_blocks,
                    // One state format for all groups (spec.resolve).
                    |phase| {
                        let d = resolved.state_dtypes[0];
                        choose_kernel(gpu, &desc, (spec, terms), passes, Some(phase), d)
                    },
                )?)
            } else {
                None
            };
            let ortho =
                match (&groups[0], &matrices, &per_tensor) {
                    (Algorithm::Muon(c), Some((m, x, g)), Some(p)) => Some(
                        muon::Orthogonalize::new(gpu, c, (m, *x, *g), &p.tensors, &p.buffer)?,
                    ),
                    _ => None,
                };
            let mut keep: Vec<wgpu::Buffer> = desc
                .slots
                .iter()
                .map(|s| {
                    let label = format!("optim/{name}/unused-{s}");
                    gpu.create_buffer(&label, 16, wgpu::BufferUsages::STORAGE)
                })
                .collect();
            let control = match &grad {
                Some(g) => g.control.clone(),
                None => dummy_control(gpu),
            };
            let rows = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniform,
                offset: ROWS_OFFSET,
                size: std::num::NonZeroU64::new(row_len * MAX_GROUPS as u64),
            });
            let mut dispatches = Vec::new();
            let mut reduce = None;
            for (c, dtype, blocks) in tables {
                let kernel = kernels[&dtype].clone();
                let table = gpu.create_buffer_init(
                    &format!("optim/{name}/blocks/chunk{c}/{}", dtype.as_str()),
                    bytemuck::cast_slice::<Block, u8>(&blocks),
                    wgpu::BufferUsages::STORAGE,
                );
                let mut res = vec![
                    step_binding(&uniform),
                    rows.clone(),
                    table.as_entire_binding(),
                    control.as_entire_binding(),
                    params.params.buffers[c].as_entire_binding(),
                    params.grads.buffers[c].as_entire_binding(),
                ];
                if let Some(p) = &per_tensor {
                    res.extend(p.bindings());
                }
                for (i, slot) in desc.slots.iter().enumerate() {
                    match states.role(slot) {
                        Some(role) => res.push(role.buffers[&(c, dtype)].as_entire_binding()),
                        None => res.push(keep[i].as_entire_binding()),
                    }
                }
                if dtype == StateDtype::Blockwise8 {
                    res.push(states.absmax_binding(c));
                    let maps = qmaps.as_ref().expect("8-bit tables have their maps");
                    res.push(maps.as_entire_binding());
                }
                // Muon's scratch matrix: X_0 for the measure pass, the
                // iteration's result for the apply pass.
                let mut measure_res = res.clone();
                if let Some(o) = &ortho {
                    res.push(o.x_last().as_entire_binding());
                    measure_res.push(o.x_first().as_entire_binding());
                }
                let bind_group =
                    gpu.create_bind_group(&format!("optim/{name}/chunk{c}"), &kernel.layout, &res);
                let swap_bind_groups = swap.as_ref().map(|(e, t)| {
                    let label = format!("optim/{name}/swap/chunk{c}");
                    (
                        gpu.create_bind_group(&label, &e.layout, &res),
                        gpu.create_bind_group(&label, &t.layout, &res),
                    )
                });
                let measure_bind_group = per_tensor.as_ref().map(|p| {
                    let label = format!("optim/{name}/measure/chunk{c}");
                    gpu.create_bind_group(&label, &p.measure.layout, &measure_res)
                });
                if let Some(p) = &per_tensor
                    && reduce.is_none()
                {
                    let label = format!("optim/{name}/reduce");
                    reduce = Some(gpu.create_bind_group(&label, &p.reduce.layout, &res));
                }
                let stats_bind_group = grad
                    .as_ref()
                    .map(|g| g.bind_chunk(gpu, c, &uniform, &table, &params.grads.buffers[c]));
                dispatches.push(ChunkDispatch {
                    kernel,
                    dtype,
                    bind_group,
                    swap_bind_groups,
                    measure_bind_group,
                    stats_bind_group,
                    grid: grid(blocks.len() as u32, max_dim),
                });
                keep.push(table);
            }
            keep.push(control);
            keep.extend(qmaps);
            let trust = per_tensor.zip(reduce).map(|(p, bg)| {
                let grid = p.reduce_grid(max_dim);
                (p, bg, grid)
            });
            Ok((uniform, states, dispatches, grad, trust, ortho, keep))
        })??;
        let (uniform, states, dispatches, grad, trust, muon, keep) = built;
        Ok(Optimizer {
            id: next_id(),
            gpu_id: gpu.id(),
            params_id: params.id(),
            spec: spec.clone(),
            layout,
            placement,
            groups,
            assignment,
            step: 0,
            grad_scale: 1.0,
            uniform,
            states,
            dispatches,
            grad,
            trust,
            muon,
            swap,
            eval_mode: false,
            terms,
            pass_timestamps: None,
            _keep: keep,
        })
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
            _pad0: 0,
        };
        let mut bytes = bytemuck::bytes_of(&info).to_vec();
        bytes.resize(ROWS_OFFSET as usize, 0);
        for g in groups {
            bytes.extend(g.algo().row(t));
        }
        bytes
    }

    /// Applies one step to every tensor: one uniform write, one compute pass
    /// with one dispatch per chunk (LAMB and LARS: two per chunk and one
    /// more; plus the gradient pipeline's passes when clipping, the guard or
    /// loss scaling are configured), one submit. Never waits for the GPU.
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
        let needed = Terms::of(&self.groups).union(self.terms);
        if needed != self.terms {
            self.rebuild_kernels(gpu, needed)?;
        }
        // Running state (Schedule-Free's averaging weights) of step t,
        // kept only once the step is submitted; optimizers without one
        // skip the copy.
        let running = !self.groups[0].algo().running().is_empty();
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
                        self.dispatches
                            .iter()
                            .filter_map(|d| d.stats_bind_group.as_ref().map(|bg| (bg, d.grid))),
                    );
                }
                if let Some((passes, reduce, reduce_grid)) = &self.trust {
                    pass.set_pipeline(&passes.measure.pipeline);
                    for d in &self.dispatches {
                        if let Some(bg) = &d.measure_bind_group {
                            pass.set_bind_group(0, bg, &[]);
                            pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
                        }
                    }
                    pass.set_pipeline(&passes.reduce.pipeline);
                    pass.set_bind_group(0, reduce, &[]);
                    pass.dispatch_workgroups(reduce_grid.0, reduce_grid.1, 1);
                }
                if let Some(o) = &self.muon {
                    o.record(&mut pass);
                }
                for d in &self.dispatches {
                    pass.set_pipeline(&d.kernel.pipeline);
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
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
    /// and one more; Muon as many plus `3 x ns_steps` products. The
    /// gradient pipeline's passes are not counted.
    pub fn dispatches_per_step(&self) -> usize {
        let per_chunk = if self.trust.is_some() { 2 } else { 1 };
        per_chunk * self.dispatches.len()
            + self.trust.is_some() as usize
            + self.muon.as_ref().map_or(0, |o| o.dispatches())
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
                _pad0
            }),
        );
    }
}
