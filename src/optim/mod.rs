//! Fused optimizers: configs with PyTorch's names and defaults, param groups,
//! and the [`Optimizer`] runtime that applies one step to every tensor of a
//! [`ParamSet`] in one dispatch per chunk.

mod adadelta;
mod adagrad;
mod adam;
mod rmsprop;
mod sgd;

use std::sync::Arc;

pub use adadelta::{AdadeltaConfig, AdadeltaGroup};
pub use adagrad::{AdagradConfig, AdagradGroup};
pub use adam::{AdamConfig, AdamGroup, AdamWConfig};
pub use rmsprop::{RmsPropConfig, RmsPropGroup};
pub use sgd::{SgdConfig, SgdGroup};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Slot, WORKGROUP_SIZE, grid, next_id};
use crate::layout::ParamLayout;
use crate::params::{ParamSet, Role, read_role};

/// Most param groups one optimizer may have (rows of the kernels' uniform table).
pub const MAX_GROUPS: usize = 256;

/// Elements one workgroup updates: 256 invocations x 4 elements.
pub const BLOCK_ELEMS: u64 = WORKGROUP_SIZE as u64 * 4;

/// The hyperparameters a param group may override.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupHp {
    /// Learning rate.
    pub lr: f64,
    /// L2 penalty (AdamW: decoupled decay).
    pub weight_decay: f64,
    /// L1 penalty: `l1 * sign(p)` is added to the gradient.
    pub l1: f64,
}

impl GroupHp {
    fn validate(&self, prefix: &str) -> Result<()> {
        check_lr(&format!("{prefix}lr"), self.lr)?;
        check_min(
            &format!("{prefix}weight_decay"),
            self.weight_decay,
            "weight_decay",
        )?;
        check_min(&format!("{prefix}l1"), self.l1, "l1")?;
        Ok(())
    }
}

pub(crate) fn check_lr(field: &str, v: f64) -> Result<()> {
    if !(v >= 0.0 && v.is_finite()) {
        return Err(Error::invalid(
            field,
            v,
            "a finite number >= 0",
            format!("Invalid learning rate: {v}"),
        ));
    }
    Ok(())
}

/// `v` must be finite and >= 0; PyTorch's message "Invalid {what} value: {v}".
pub(crate) fn check_min(field: &str, v: f64, what: &str) -> Result<()> {
    if !(v >= 0.0 && v.is_finite()) {
        return Err(Error::invalid(
            field,
            v,
            "a finite number >= 0",
            format!("Invalid {what} value: {v}"),
        ));
    }
    Ok(())
}

/// `lo <= v < 1` (or `<= 1` when `inclusive`), with the given message.
pub(crate) fn check_unit(field: &str, v: f64, inclusive: bool, message: String) -> Result<()> {
    let ok = v >= 0.0 && if inclusive { v <= 1.0 } else { v < 1.0 };
    if !ok {
        let allowed = if inclusive {
            "0 <= x <= 1"
        } else {
            "0 <= x < 1"
        };
        return Err(Error::invalid(
            field,
            v,
            allowed.replace('x', field),
            message,
        ));
    }
    Ok(())
}

/// What a kernel family needs: its WGSL source, state slots and variant.
pub(crate) struct KernelDesc {
    pub(crate) name: &'static str,
    pub(crate) source: &'static str,
    /// State names in binding order (bindings 4, 5, ...).
    pub(crate) slots: &'static [&'static str],
    /// The states this configuration uses, with their initial value.
    pub(crate) active: Vec<(&'static str, f32)>,
    pub(crate) constants: Vec<(&'static str, f64)>,
}

/// The per-algorithm hooks of the generic runtime.
pub(crate) trait Algo {
    fn validate(&self) -> Result<()>;
    fn hp(&self) -> GroupHp;
    fn kernel(&self) -> KernelDesc;
    /// The uniform row of one group for step `t` (1-based), as bytes.
    fn row(&self, hp: &GroupHp, t: u64, grad_scale: f64) -> Vec<u8>;
}

/// The optimizer algorithm and its configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Algorithm {
    /// Stochastic gradient descent, see [`SgdConfig`].
    Sgd(SgdConfig),
    /// Adam (L2 weight decay), see [`AdamConfig`].
    Adam(AdamConfig),
    /// AdamW (decoupled weight decay), see [`AdamWConfig`].
    AdamW(AdamWConfig),
    /// Adagrad, see [`AdagradConfig`].
    Adagrad(AdagradConfig),
    /// Adadelta, see [`AdadeltaConfig`].
    Adadelta(AdadeltaConfig),
    /// RMSprop, see [`RmsPropConfig`].
    RmsProp(RmsPropConfig),
}

impl Algorithm {
    pub(crate) fn algo(&self) -> &dyn Algo {
        match self {
            Algorithm::Sgd(c) => c,
            Algorithm::Adam(c) => c,
            Algorithm::AdamW(c) => c,
            Algorithm::Adagrad(c) => c,
            Algorithm::Adadelta(c) => c,
            Algorithm::RmsProp(c) => c,
        }
    }
    /// The lower-case name: `sgd`, `adam`, `adamw`, `adagrad`, `adadelta`, `rmsprop`.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Sgd(_) => "sgd",
            Algorithm::Adam(_) => "adam",
            Algorithm::AdamW(_) => "adamw",
            Algorithm::Adagrad(_) => "adagrad",
            Algorithm::Adadelta(_) => "adadelta",
            Algorithm::RmsProp(_) => "rmsprop",
        }
    }
    /// Checks every hyperparameter.
    pub fn validate(&self) -> Result<()> {
        self.algo().validate()
    }
    /// The state buffers this configuration keeps, with PyTorch's names.
    pub fn state_names(&self) -> Vec<&'static str> {
        self.algo().kernel().active.iter().map(|a| a.0).collect()
    }
    /// The base group's `lr`, `weight_decay` and `l1`.
    pub fn base_hp(&self) -> GroupHp {
        self.algo().hp()
    }
}

/// Which tensors a [`ParamGroup`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Names(Vec<String>),
    Pattern(String),
}

/// A param group: a set of tensors with their own `lr`, `weight_decay` or
/// `l1` (PyTorch's param groups). Tensors that no group selects belong to
/// the base group (group 0), which uses the optimizer's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroup {
    selector: Selector,
    lr: Option<f64>,
    weight_decay: Option<f64>,
    l1: Option<f64>,
}

impl ParamGroup {
    /// The tensors whose names match `pattern`, where `*` matches any run of
    /// characters (`"*.bias"`, `"embed*"`).
    pub fn matching(pattern: impl Into<String>) -> ParamGroup {
        ParamGroup {
            selector: Selector::Pattern(pattern.into()),
            lr: None,
            weight_decay: None,
            l1: None,
        }
    }
    /// The tensors with exactly these names.
    pub fn names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> ParamGroup {
        ParamGroup {
            selector: Selector::Names(names.into_iter().map(Into::into).collect()),
            lr: None,
            weight_decay: None,
            l1: None,
        }
    }
    /// Overrides the learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }
    /// Overrides the weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = Some(wd);
        self
    }
    /// Overrides the L1 penalty.
    pub fn l1(mut self, l1: f64) -> Self {
        self.l1 = Some(l1);
        self
    }
    fn selects(&self, name: &str) -> bool {
        match &self.selector {
            Selector::Names(n) => n.iter().any(|x| x == name),
            Selector::Pattern(p) => glob_match(p, name),
        }
    }
    fn describe(&self) -> String {
        match &self.selector {
            Selector::Names(n) => format!("names {n:?}"),
            Selector::Pattern(p) => format!("pattern {p:?}"),
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The whole description of an optimizer: algorithm and param groups.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSpec {
    algorithm: Algorithm,
    groups: Vec<ParamGroup>,
}

impl OptimizerSpec {
    /// A spec for `algorithm` with one group holding every tensor.
    pub fn new(algorithm: Algorithm) -> OptimizerSpec {
        OptimizerSpec {
            algorithm,
            groups: Vec::new(),
        }
    }
    /// SGD.
    pub fn sgd(c: SgdConfig) -> Self {
        Self::new(Algorithm::Sgd(c))
    }
    /// Adam.
    pub fn adam(c: AdamConfig) -> Self {
        Self::new(Algorithm::Adam(c))
    }
    /// AdamW.
    pub fn adamw(c: AdamWConfig) -> Self {
        Self::new(Algorithm::AdamW(c))
    }
    /// Adagrad.
    pub fn adagrad(c: AdagradConfig) -> Self {
        Self::new(Algorithm::Adagrad(c))
    }
    /// Adadelta.
    pub fn adadelta(c: AdadeltaConfig) -> Self {
        Self::new(Algorithm::Adadelta(c))
    }
    /// RMSprop.
    pub fn rmsprop(c: RmsPropConfig) -> Self {
        Self::new(Algorithm::RmsProp(c))
    }
    /// Adds a param group (group 1, 2, ... in the order added).
    pub fn group(mut self, g: ParamGroup) -> Self {
        self.groups.push(g);
        self
    }
    /// The algorithm.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// Validates the spec against `layout` and returns each group's
    /// hyperparameters (group 0 first) and each tensor's group.
    ///
    /// # Errors
    /// Invalid hyperparameters, more than [`MAX_GROUPS`] groups, a group that
    /// selects no tensor, or a tensor selected by two groups.
    pub fn resolve(&self, layout: &ParamLayout) -> Result<(Vec<GroupHp>, Vec<usize>)> {
        self.algorithm.validate()?;
        if self.groups.len() + 1 > MAX_GROUPS {
            return Err(Error::LimitExceeded {
                limit: "param groups".into(),
                needed: self.groups.len() as u64 + 1,
                available: MAX_GROUPS as u64,
                hint: "; merge groups with equal hyperparameters".into(),
            });
        }
        let base = self.algorithm.base_hp();
        let mut hps = vec![base];
        for (i, g) in self.groups.iter().enumerate() {
            let hp = GroupHp {
                lr: g.lr.unwrap_or(base.lr),
                weight_decay: g.weight_decay.unwrap_or(base.weight_decay),
                l1: g.l1.unwrap_or(base.l1),
            };
            hp.validate(&format!("groups[{}].", i + 1))?;
            hps.push(hp);
        }
        let mut assignment = vec![0usize; layout.len()];
        let mut used = vec![false; self.groups.len()];
        for (k, t) in layout.tensors().iter().enumerate() {
            for (i, g) in self.groups.iter().enumerate() {
                if g.selects(&t.name) {
                    if assignment[k] != 0 {
                        return Err(Error::invalid(
                            format!("groups[{}]", i + 1),
                            g.describe(),
                            "each tensor in at most one param group",
                            format!(
                                "some parameters appear in more than one parameter group: \
                                 `{}` is in groups {} and {}",
                                t.name,
                                assignment[k],
                                i + 1
                            ),
                        ));
                    }
                    assignment[k] = i + 1;
                    used[i] = true;
                }
            }
        }
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(Error::invalid(
                format!("groups[{}]", i + 1),
                self.groups[i].describe(),
                "a selector that matches at least one tensor of the layout",
                format!("param group {} selects no tensor", i + 1),
            ));
        }
        Ok((hps, assignment))
    }
}

/// A work item of the kernels: `len` (<= 1024) elements from `start` of one
/// chunk, all in param group `group`. Matches WGSL `struct Block`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Block {
    /// First element inside the chunk.
    pub start: u32,
    /// Number of elements, at most [`BLOCK_ELEMS`].
    pub len: u32,
    /// Param group index.
    pub group: u32,
    /// Padding.
    pub _pad: u32,
}

/// How [`Optimizer::step`] covers the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatch {
    /// One dispatch per chunk for all tensors (the default).
    #[default]
    Fused,
    /// One dispatch per tensor piece, as an unfused optimizer would do;
    /// numerically identical, kept as the baseline of benchmarks.
    PerTensor,
}

struct ChunkDispatch {
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
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
    placement: crate::layout::Placement,
    hps: Vec<GroupHp>,
    assignment: Vec<usize>,
    step: u64,
    grad_scale: f64,
    kernel: Arc<Kernel>,
    uniform: wgpu::Buffer,
    states: Vec<(&'static str, Role)>,
    dispatches: Vec<ChunkDispatch>,
    _keep: Vec<wgpu::Buffer>,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("algorithm", &self.spec.algorithm)
            .field("groups", &self.hps)
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
        gpu.check_same("the ParamSet", params.gpu_id())?;
        let layout = params.layout().clone();
        let (hps, assignment) = spec.resolve(&layout)?;
        let desc = spec.algorithm.algo().kernel();
        let mut slots = vec![
            Slot::Uniform,
            Slot::StorageRead,
            Slot::StorageReadWrite,
            Slot::StorageRead,
        ];
        slots.extend(desc.slots.iter().map(|_| Slot::StorageReadWrite));
        let mut key = format!("optim/{}", desc.name);
        for (k, v) in &desc.constants {
            key.push_str(&format!("/{k}={v}"));
        }
        let kernel = gpu.kernel(&key, desc.source, &slots, &desc.constants)?;
        let placement = params.placement().clone();
        let row_len = spec.algorithm.algo().row(&hps[0], 1, 1.0).len() as u64;
        let max_dim = gpu.limits().max_compute_workgroups_per_dimension;

        let built = gpu.scoped(&format!("optim/{}/new", desc.name), || {
            let uniform = gpu.create_buffer(
                &format!("optim/{}/groups", desc.name),
                row_len * MAX_GROUPS as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            let states: Vec<(&'static str, Role)> = desc
                .active
                .iter()
                .map(|&(name, init)| {
                    (
                        name,
                        Role::new(
                            gpu,
                            &format!("optim/{}/{name}", desc.name),
                            &placement,
                            init,
                        ),
                    )
                })
                .collect();
            let mut keep = Vec::new();
            let dummies: Vec<wgpu::Buffer> = desc
                .slots
                .iter()
                .map(|s| {
                    gpu.create_buffer(
                        &format!("optim/{}/unused-{s}", desc.name),
                        4,
                        wgpu::BufferUsages::STORAGE,
                    )
                })
                .collect();
            let mut dispatches = Vec::new();
            for (c, _) in placement.chunk_lens().iter().enumerate() {
                // Fused: one table (one dispatch) per chunk. Per tensor: one
                // table per tensor piece, the unfused baseline of benches.
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
                            blocks.push(Block {
                                start: (p.chunk_offset + s) as u32,
                                len: len as u32,
                                group: *group as u32,
                                _pad: 0,
                            });
                            s += len;
                        }
                    }
                }
                for blocks in tables.into_iter().filter(|t| !t.is_empty()) {
                    let table = gpu.create_buffer_init(
                        &format!("optim/{}/blocks/chunk{c}", desc.name),
                        bytemuck::cast_slice(&blocks),
                        wgpu::BufferUsages::STORAGE,
                    );
                    let mut res = vec![
                        uniform.as_entire_binding(),
                        table.as_entire_binding(),
                        params.params.buffers[c].as_entire_binding(),
                        params.grads.buffers[c].as_entire_binding(),
                    ];
                    for (i, slot) in desc.slots.iter().enumerate() {
                        match states.iter().find(|s| s.0 == *slot) {
                            Some((_, role)) => res.push(role.buffers[c].as_entire_binding()),
                            None => res.push(dummies[i].as_entire_binding()),
                        }
                    }
                    let bind_group = gpu.create_bind_group(
                        &format!("optim/{}/chunk{c}", desc.name),
                        &kernel.layout,
                        &res,
                    );
                    dispatches.push(ChunkDispatch {
                        bind_group,
                        grid: grid(blocks.len() as u32, max_dim),
                    });
                    keep.push(table);
                }
            }
            keep.extend(dummies);
            (uniform, states, dispatches, keep)
        })?;
        let (uniform, states, dispatches, keep) = built;
        Ok(Optimizer {
            id: next_id(),
            gpu_id: gpu.id(),
            params_id: params.id(),
            spec: spec.clone(),
            layout,
            placement,
            hps,
            assignment,
            step: 0,
            grad_scale: 1.0,
            kernel,
            uniform,
            states,
            dispatches,
            _keep: keep,
        })
    }

    fn check(&self, gpu: &Gpu, params: &ParamSet) -> Result<()> {
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

    /// Applies one step to every tensor: one uniform write, one compute pass
    /// with one dispatch per chunk, one submit. Never waits for the GPU.
    ///
    /// # Errors
    /// A `params` other than the one the optimizer was built for, another
    /// device, or a wgpu error; the step count is unchanged then.
    pub fn step(&mut self, gpu: &Gpu, params: &mut ParamSet) -> Result<()> {
        self.check(gpu, params)?;
        let t = self.step + 1;
        let algo = self.spec.algorithm.algo();
        let mut rows = Vec::new();
        for hp in &self.hps {
            rows.extend(algo.row(hp, t, self.grad_scale));
        }
        let name = self.spec.algorithm.name();
        gpu.scoped(name, || {
            gpu.queue().write_buffer(&self.uniform, 0, &rows);
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("optim/step"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("optim/step"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&self.kernel.pipeline);
                for d in &self.dispatches {
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
                }
            }
            gpu.queue().submit([enc.finish()]);
        })?;
        self.step = t;
        Ok(())
    }

    /// Number of steps taken (PyTorch's `state["step"]`).
    pub fn step_count(&self) -> u64 {
        self.step
    }
    /// Sets the step count, e.g. when resuming from a checkpoint.
    pub fn set_step_count(&mut self, step: u64) {
        self.step = step;
    }
    /// The spec the optimizer was built from.
    pub fn spec(&self) -> &OptimizerSpec {
        &self.spec
    }
    /// Number of param groups, the base group included.
    pub fn num_groups(&self) -> usize {
        self.hps.len()
    }
    /// The param group of tensor `name`.
    pub fn group_of(&self, name: &str) -> Result<usize> {
        Ok(self.assignment[self.layout.index_of(name)?])
    }
    /// The hyperparameters of `group`.
    pub fn group_hp(&self, group: usize) -> Result<GroupHp> {
        self.hps
            .get(group)
            .copied()
            .ok_or_else(|| self.no_group(group))
    }
    fn no_group(&self, group: usize) -> Error {
        Error::invalid(
            "group",
            group,
            format!("0..{}", self.hps.len()),
            format!("no param group {group}"),
        )
    }
    /// Sets the learning rate of `group` for the next steps (a schedule calls
    /// this each step; it costs no rebuild and no readback).
    pub fn set_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        check_lr("lr", lr)?;
        let n = self.hps.len();
        match self.hps.get_mut(group) {
            Some(hp) => {
                hp.lr = lr;
                Ok(())
            }
            None => Err(Error::invalid(
                "group",
                group,
                format!("0..{n}"),
                format!("no param group {group}"),
            )),
        }
    }
    /// Sets the learning rate of every group.
    pub fn set_lr_all(&mut self, lr: f64) -> Result<()> {
        check_lr("lr", lr)?;
        for hp in &mut self.hps {
            hp.lr = lr;
        }
        Ok(())
    }
    /// Multiplies every gradient by `scale` inside the update (gradient
    /// accumulation or data-parallel averaging; 1 by default). No extra pass.
    pub fn set_grad_scale(&mut self, scale: f64) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::invalid(
                "grad_scale",
                scale,
                "a finite number",
                "Invalid grad_scale value",
            ));
        }
        self.grad_scale = scale;
        Ok(())
    }
    /// The state buffers kept, with PyTorch's names (`exp_avg`, ...).
    pub fn state_names(&self) -> Vec<&'static str> {
        self.states.iter().map(|s| s.0).collect()
    }

    fn state(&self, state: &str) -> Result<&Role> {
        self.states
            .iter()
            .find(|s| s.0 == state)
            .map(|s| &s.1)
            .ok_or_else(|| {
                Error::invalid(
                    "state",
                    format!("{state:?}"),
                    format!("one of {:?}", self.state_names()),
                    format!(
                        "{} keeps no state named {state:?}",
                        self.spec.algorithm.name()
                    ),
                )
            })
    }

    /// Downloads optimizer state `state` (e.g. `"exp_avg"`) of tensor `name`.
    pub fn read_state(&self, gpu: &Gpu, state: &str, name: &str) -> Result<Vec<f32>> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        let role = self.state(state)?;
        let k = self.layout.index_of(name)?;
        read_role(gpu, role, &self.placement, &[k]).map(|mut v| v.remove(0))
    }

    /// Uploads optimizer state `state` of tensor `name`.
    pub fn write_state(&mut self, gpu: &Gpu, state: &str, name: &str, data: &[f32]) -> Result<()> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        let role = self.state(state)?;
        let k = self.layout.index_of(name)?;
        let t = &self.layout.tensors()[k];
        if t.numel != data.len() as u64 {
            return Err(Error::mismatch(format!(
                "state `{state}` of `{name}` has {} elements, but {} were given",
                t.numel,
                data.len()
            )));
        }
        role.write(gpu, self.placement.pieces(k), data);
        Ok(())
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Number of compute dispatches one step records (one per chunk when fused).
    pub fn dispatches_per_step(&self) -> usize {
        self.dispatches.len()
    }
}
