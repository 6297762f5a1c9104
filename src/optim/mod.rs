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

use crate::clip::{
    ClipScope, ControlHeader, GradientConfig, GradientState, GroupOut, LossScale, NonFinite,
    NormType, StatsParams, StepStats,
};
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
    gradients: GradientConfig,
}

impl OptimizerSpec {
    /// A spec for `algorithm` with one group holding every tensor.
    pub fn new(algorithm: Algorithm) -> OptimizerSpec {
        OptimizerSpec {
            algorithm,
            groups: Vec::new(),
            gradients: GradientConfig::default(),
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
    /// The gradient pipeline's configuration.
    pub fn gradients(&self) -> &GradientConfig {
        &self.gradients
    }
    /// Replaces the whole gradient configuration.
    pub fn with_gradients(mut self, g: GradientConfig) -> Self {
        self.gradients = g;
        self
    }
    /// Clips the gradient norm over all tensors to `max_norm` (PyTorch
    /// `clip_grad_norm_`, L2), applied inside the fused update.
    pub fn clip_by_global_norm(mut self, max_norm: f64) -> Self {
        self.gradients.clip_norm = Some((max_norm, NormType::L2));
        self.gradients.clip_scope = ClipScope::Global;
        self
    }
    /// Clips each param group's gradient norm (of `norm_type`) to `max_norm`.
    pub fn clip_by_group_norm(mut self, max_norm: f64, norm_type: NormType) -> Self {
        self.gradients.clip_norm = Some((max_norm, norm_type));
        self.gradients.clip_scope = ClipScope::PerGroup;
        self
    }
    /// Clips the norm of `norm_type` over all tensors to `max_norm`.
    pub fn clip_by_norm_type(mut self, max_norm: f64, norm_type: NormType) -> Self {
        self.gradients.clip_norm = Some((max_norm, norm_type));
        self
    }
    /// Clamps each gradient to `[-value, value]` (PyTorch `clip_grad_value_`).
    pub fn clip_by_value(mut self, value: f64) -> Self {
        self.gradients.clip_value = Some(value);
        self
    }
    /// What to do with a step whose gradients are not finite.
    pub fn nonfinite(mut self, mode: NonFinite) -> Self {
        self.gradients.nonfinite = mode;
        self
    }
    /// Loss scaling; a dynamic scale also turns on [`NonFinite::Skip`] unless
    /// another non-finite mode was chosen.
    pub fn loss_scale(mut self, scale: LossScale) -> Self {
        if matches!(scale, LossScale::Dynamic(_))
            && self.gradients.nonfinite == NonFinite::Propagate
        {
            self.gradients.nonfinite = NonFinite::Skip;
        }
        self.gradients.loss_scale = Some(scale);
        self
    }

    /// Validates the spec against `layout` and returns each group's
    /// hyperparameters (group 0 first) and each tensor's group.
    ///
    /// # Errors
    /// Invalid hyperparameters, more than [`MAX_GROUPS`] groups, a group that
    /// selects no tensor, or a tensor selected by two groups.
    pub fn resolve(&self, layout: &ParamLayout) -> Result<(Vec<GroupHp>, Vec<usize>)> {
        self.algorithm.validate()?;
        self.gradients.validate()?;
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
    /// Index of this block among all blocks of all chunks (its slot in the
    /// gradient pipeline's partial-norm buffer).
    pub index: u32,
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
    /// The gradient-statistics pass over the same blocks, when configured.
    stats_bind_group: Option<wgpu::BindGroup>,
    grid: (u32, u32),
}

/// Where an asynchronous read of the control block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Idle,
    Pending { host_step: u64 },
    Mapped { host_step: u64 },
    Failed,
}

/// The device side of the gradient pipeline (see [`crate::clip`]).
struct GradPipeline {
    config: GradientConfig,
    stats: Arc<Kernel>,
    finalize: Arc<Kernel>,
    uniform: wgpu::Buffer,
    control: wgpu::Buffer,
    finalize_bind_group: wgpu::BindGroup,
    n_partials: u32,
    staging: wgpu::Buffer,
    read: Arc<std::sync::Mutex<ReadState>>,
    pending_submission: Option<wgpu::SubmissionIndex>,
    seen_skipped: u64,
    _partials: wgpu::Buffer,
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
    grad: Option<GradPipeline>,
    pass_timestamps: Option<PassTimestamps>,
    _keep: Vec<wgpu::Buffer>,
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

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("algorithm", &self.spec.algorithm)
            .field("groups", &self.hps)
            .field("gradients", &self.spec.gradients)
            .field("step", &self.step)
            .finish()
    }
}

fn control_bytes(n_groups: usize, header: ControlHeader) -> Vec<u8> {
    let mut v = bytemuck::bytes_of(&header).to_vec();
    v.resize(16 + 16 * n_groups, 0);
    v
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
        let gcfg = spec.gradients;
        let guarded = gcfg.needs_device_pass();
        let desc = spec.algorithm.algo().kernel();
        let mut constants = desc.constants.clone();
        constants.push(("STATS", guarded as u8 as f64));
        constants.push((
            "SKIP_NONFINITE",
            (guarded && gcfg.nonfinite != NonFinite::Propagate) as u8 as f64,
        ));
        constants.push(("CLIP_VALUE", gcfg.clip_value.is_some() as u8 as f64));
        let mut slots = vec![
            Slot::Uniform,
            Slot::StorageRead,
            Slot::StorageReadWrite,
            Slot::StorageRead,
        ];
        slots.extend(desc.slots.iter().map(|_| Slot::StorageReadWrite));
        slots.push(Slot::StorageRead);
        let mut key = format!("optim/{}", desc.name);
        for (k, v) in &constants {
            key.push_str(&format!("/{k}={v}"));
        }
        let kernel = gpu.kernel(&key, desc.source, &slots, &constants)?;
        let (stats_kernel, finalize_kernel) = if guarded {
            let clip_value = [("CLIP_VALUE", gcfg.clip_value.is_some() as u8 as f64)];
            (
                Some(gpu.kernel(
                    &format!("clip/stats/CLIP_VALUE={}", clip_value[0].1),
                    include_str!("../../shaders/grad_stats.wgsl"),
                    &[
                        Slot::Uniform,
                        Slot::StorageRead,
                        Slot::StorageRead,
                        Slot::StorageReadWrite,
                        Slot::StorageRead,
                    ],
                    &clip_value,
                )?),
                Some(gpu.kernel(
                    "clip/finalize",
                    include_str!("../../shaders/grad_finalize.wgsl"),
                    &[Slot::Uniform, Slot::StorageRead, Slot::StorageReadWrite],
                    &[],
                )?),
            )
        } else {
            (None, None)
        };
        let placement = params.placement().clone();
        let row_len = spec.algorithm.algo().row(&hps[0], 1, 1.0).len() as u64;
        let max_dim = gpu.limits().max_compute_workgroups_per_dimension;
        let n_groups = hps.len();
        let init_scale = match gcfg.loss_scale {
            Some(LossScale::Dynamic(c)) => c.init_scale as f32,
            _ => 1.0,
        };

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
            let control = gpu.create_buffer_init(
                "clip/control",
                &control_bytes(
                    if guarded { n_groups } else { 1 },
                    ControlHeader {
                        found_inf: 0,
                        skipped: 0,
                        scale: init_scale,
                        growth_tracker: 0,
                    },
                ),
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            );
            let stats_uniform = gpu.create_buffer(
                "clip/params",
                std::mem::size_of::<StatsParams>() as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            // Every block of every chunk gets a global index: its slot in
            // the partial-norm buffer.
            let mut tables_all: Vec<(usize, Vec<Block>)> = Vec::new();
            let mut next_index = 0u32;
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
                                index: next_index,
                            });
                            next_index += 1;
                            s += len;
                        }
                    }
                }
                tables_all.extend(tables.into_iter().filter(|t| !t.is_empty()).map(|t| (c, t)));
            }
            let partials = gpu.create_buffer(
                "clip/partials",
                16 * next_index.max(1) as u64,
                wgpu::BufferUsages::STORAGE,
            );
            let mut dispatches = Vec::new();
            for (c, blocks) in tables_all {
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
                res.push(control.as_entire_binding());
                let bind_group = gpu.create_bind_group(
                    &format!("optim/{}/chunk{c}", desc.name),
                    &kernel.layout,
                    &res,
                );
                let stats_bind_group = stats_kernel.as_ref().map(|k| {
                    gpu.create_bind_group(
                        &format!("clip/stats/chunk{c}"),
                        &k.layout,
                        &[
                            stats_uniform.as_entire_binding(),
                            table.as_entire_binding(),
                            params.grads.buffers[c].as_entire_binding(),
                            partials.as_entire_binding(),
                            control.as_entire_binding(),
                        ],
                    )
                });
                dispatches.push(ChunkDispatch {
                    bind_group,
                    stats_bind_group,
                    grid: grid(blocks.len() as u32, max_dim),
                });
                keep.push(table);
            }
            keep.extend(dummies);
            let grad = match (stats_kernel, finalize_kernel) {
                (Some(stats), Some(finalize)) => {
                    let finalize_bind_group = gpu.create_bind_group(
                        "clip/finalize",
                        &finalize.layout,
                        &[
                            stats_uniform.as_entire_binding(),
                            partials.as_entire_binding(),
                            control.as_entire_binding(),
                        ],
                    );
                    let staging = gpu.create_buffer(
                        "clip/control/readback",
                        control.size(),
                        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    );
                    Some(GradPipeline {
                        config: gcfg,
                        stats,
                        finalize,
                        uniform: stats_uniform,
                        control,
                        finalize_bind_group,
                        n_partials: next_index,
                        staging,
                        read: Arc::new(std::sync::Mutex::new(ReadState::Idle)),
                        pending_submission: None,
                        seen_skipped: 0,
                        _partials: partials,
                    })
                }
                _ => {
                    keep.push(control);
                    keep.push(stats_uniform);
                    keep.push(partials);
                    None
                }
            };
            (uniform, states, dispatches, grad, keep)
        })?;
        let (uniform, states, dispatches, grad, keep) = built;
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
            grad,
            pass_timestamps: None,
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
    /// with one dispatch per chunk (plus the gradient pipeline's passes when
    /// clipping, the guard or loss scaling are configured), one submit.
    /// Never waits for the GPU.
    ///
    /// # Errors
    /// A `params` other than the one the optimizer was built for, another
    /// device, or a wgpu error; the step count is unchanged then. With
    /// [`NonFinite::Error`], [`Error::NonFinite`] once the host has learned
    /// that an earlier step was skipped (the skipped step changed nothing).
    pub fn step(&mut self, gpu: &Gpu, params: &mut ParamSet) -> Result<()> {
        self.check(gpu, params)?;
        if self.nonfinite_mode() == NonFinite::Error {
            // Non-blocking: look at a completed read, if any.
            let _ = gpu.device().poll(wgpu::PollType::Poll);
            if let Some(stats) = self.take_mapped()? {
                self.observe(&stats)?;
            }
        }
        let t = self.step + 1;
        let algo = self.spec.algorithm.algo();
        let host_scale = self.grad_scale * self.spec.gradients.static_factor();
        let mut rows = Vec::new();
        for hp in &self.hps {
            rows.extend(algo.row(hp, t, host_scale));
        }
        let name = self.spec.algorithm.name();
        let request_read = self.nonfinite_mode() == NonFinite::Error
            && self.grad.as_ref().is_some_and(|g| {
                *g.read.lock().unwrap_or_else(|p| p.into_inner()) == ReadState::Idle
            });
        let submission = gpu.scoped(name, || {
            gpu.queue().write_buffer(&self.uniform, 0, &rows);
            if let Some(gp) = &self.grad {
                let p = stats_params(&gp.config, host_scale, gp.n_partials, self.hps.len());
                gpu.queue()
                    .write_buffer(&gp.uniform, 0, bytemuck::bytes_of(&p));
            }
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
                    pass.set_pipeline(&gp.stats.pipeline);
                    for d in &self.dispatches {
                        if let Some(bg) = &d.stats_bind_group {
                            pass.set_bind_group(0, bg, &[]);
                            pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
                        }
                    }
                    pass.set_pipeline(&gp.finalize.pipeline);
                    pass.set_bind_group(0, &gp.finalize_bind_group, &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                }
                pass.set_pipeline(&self.kernel.pipeline);
                for d in &self.dispatches {
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
                }
            }
            if request_read && let Some(gp) = &self.grad {
                enc.copy_buffer_to_buffer(&gp.control, 0, &gp.staging, 0, gp.control.size());
            }
            gpu.queue().submit([enc.finish()])
        })?;
        self.step = t;
        if request_read {
            self.map_staging(submission);
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

fn stats_params(
    c: &GradientConfig,
    host_scale: f64,
    n_partials: u32,
    n_groups: usize,
) -> StatsParams {
    let (max_norm, norm_type) = match c.clip_norm {
        Some((m, t)) => (m as f32, t),
        None => (0.0, NormType::L2),
    };
    let (dynamic, growth, backoff, interval) = match c.loss_scale {
        Some(LossScale::Dynamic(s)) => (
            1,
            s.growth_factor as f32,
            s.backoff_factor as f32,
            s.growth_interval,
        ),
        _ => (0, 1.0, 1.0, 1),
    };
    StatsParams {
        host_scale: host_scale as f32,
        clip_value: c.clip_value.unwrap_or(0.0) as f32,
        max_norm,
        norm_type: norm_type.code(),
        n_partials,
        n_groups: n_groups as u32,
        per_group: (c.clip_scope == ClipScope::PerGroup) as u32,
        dynamic_scale: dynamic,
        growth_factor: growth,
        backoff_factor: backoff,
        growth_interval: interval,
        skip_nonfinite: (c.nonfinite != NonFinite::Propagate) as u32,
    }
}

// The gradient pipeline's host side: asynchronous reads of the control block.
impl Optimizer {
    fn nonfinite_mode(&self) -> NonFinite {
        self.spec.gradients.nonfinite
    }

    fn no_pipeline(&self) -> Error {
        Error::invalid(
            "gradients",
            "none",
            "clipping, a non-finite guard or a dynamic loss scale in the spec",
            "this optimizer has no gradient pipeline, so there are no statistics",
        )
    }

    /// Starts `map_async` on the staging copy submitted with `submission`.
    fn map_staging(&mut self, submission: wgpu::SubmissionIndex) {
        let host_step = self.step;
        let Some(gp) = self.grad.as_mut() else { return };
        *gp.read.lock().unwrap_or_else(|p| p.into_inner()) = ReadState::Pending { host_step };
        gp.pending_submission = Some(submission);
        let state = gp.read.clone();
        gp.staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                *s = match r {
                    Ok(()) => ReadState::Mapped { host_step },
                    Err(_) => ReadState::Failed,
                };
            });
    }

    /// Reads and unmaps a completed staging copy, if there is one.
    fn take_mapped(&mut self) -> Result<Option<StepStats>> {
        let n_groups = self.hps.len();
        let Some(gp) = self.grad.as_mut() else {
            return Ok(None);
        };
        let state = *gp.read.lock().unwrap_or_else(|p| p.into_inner());
        match state {
            ReadState::Mapped { host_step } => {
                let bytes = {
                    let view = gp
                        .staging
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| Error::Gpu {
                            context: "clip/control/readback".into(),
                            message: e.to_string(),
                        })?;
                    view.to_vec()
                };
                gp.staging.unmap();
                *gp.read.lock().unwrap_or_else(|p| p.into_inner()) = ReadState::Idle;
                gp.pending_submission = None;
                let header: ControlHeader = bytemuck::pod_read_unaligned(&bytes[..16]);
                let groups: Vec<GroupOut> = (0..n_groups)
                    .map(|g| bytemuck::pod_read_unaligned(&bytes[16 + 16 * g..32 + 16 * g]))
                    .collect();
                Ok(Some(StepStats {
                    host_step,
                    skipped_steps: header.skipped as u64,
                    found_inf: header.found_inf != 0,
                    loss_scale: header.scale,
                    growth_tracker: header.growth_tracker,
                    norms: groups.iter().map(|g| g.norm).collect(),
                    clip_coefs: groups.iter().map(|g| g.coef).collect(),
                }))
            }
            ReadState::Failed => {
                *gp.read.lock().unwrap_or_else(|p| p.into_inner()) = ReadState::Idle;
                gp.pending_submission = None;
                Err(Error::Gpu {
                    context: "clip/control/readback".into(),
                    message: "map_async failed".into(),
                })
            }
            _ => Ok(None),
        }
    }

    /// In [`NonFinite::Error`] mode, turns newly seen skipped steps into an error.
    fn observe(&mut self, stats: &StepStats) -> Result<()> {
        let mode = self.nonfinite_mode();
        let Some(gp) = self.grad.as_mut() else {
            return Ok(());
        };
        let newly = stats.skipped_steps.saturating_sub(gp.seen_skipped);
        gp.seen_skipped = gp.seen_skipped.max(stats.skipped_steps);
        if mode == NonFinite::Error && newly > 0 {
            return Err(Error::NonFinite {
                skipped: newly,
                host_step: stats.host_step,
            });
        }
        Ok(())
    }

    /// Starts an asynchronous read of the gradient statistics (norms, skipped
    /// steps, loss scale) as of the steps submitted so far. Does not wait;
    /// does nothing if a read is already in flight.
    ///
    /// # Errors
    /// No gradient pipeline is configured, or a wgpu error.
    pub fn request_stats(&mut self, gpu: &Gpu) -> Result<()> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        let gp = self.grad.as_ref().ok_or_else(|| self.no_pipeline())?;
        if *gp.read.lock().unwrap_or_else(|p| p.into_inner()) != ReadState::Idle {
            return Ok(());
        }
        let submission = gpu.scoped("clip/control/readback", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("clip/control/readback"),
                });
            enc.copy_buffer_to_buffer(&gp.control, 0, &gp.staging, 0, gp.control.size());
            gpu.queue().submit([enc.finish()])
        })?;
        self.map_staging(submission);
        Ok(())
    }

    /// The statistics if a read has completed, without waiting; starts a
    /// read when none is in flight.
    pub fn try_stats(&mut self, gpu: &Gpu) -> Result<Option<StepStats>> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        if self.grad.is_none() {
            return Err(self.no_pipeline());
        }
        let _ = gpu.device().poll(wgpu::PollType::Poll);
        match self.take_mapped()? {
            Some(s) => {
                self.observe(&s)?;
                Ok(Some(s))
            }
            None => {
                self.request_stats(gpu)?;
                Ok(None)
            }
        }
    }

    /// The statistics as of the steps submitted so far: starts a read if
    /// none is in flight and waits for it (bounded). Call it every k steps,
    /// not inside a hot loop.
    ///
    /// # Errors
    /// As [`try_stats`](Self::try_stats), [`Error::Timeout`], and
    /// [`Error::NonFinite`] in [`NonFinite::Error`] mode.
    pub fn stats(&mut self, gpu: &Gpu) -> Result<StepStats> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        // A read started before the latest steps would be stale: take it and
        // start a fresh one.
        let _ = gpu.device().poll(wgpu::PollType::Poll);
        let stale = self.take_mapped()?;
        if let Some(s) = &stale {
            self.observe(s)?;
        }
        let pending_old = self.grad.as_ref().is_some_and(|g| {
            matches!(*g.read.lock().unwrap_or_else(|p| p.into_inner()),
                ReadState::Pending { host_step } if host_step != self.step)
        });
        if pending_old {
            self.wait_read(gpu)?;
            if let Some(s) = self.take_mapped()? {
                self.observe(&s)?;
            }
        }
        self.request_stats(gpu)?;
        self.wait_read(gpu)?;
        let s = self.take_mapped()?.ok_or_else(|| Error::Gpu {
            context: "clip/control/readback".into(),
            message: "the read did not complete".into(),
        })?;
        self.observe(&s)?;
        Ok(s)
    }

    fn wait_read(&mut self, gpu: &Gpu) -> Result<()> {
        let Some(gp) = self.grad.as_ref() else {
            return Ok(());
        };
        if let Some(sub) = gp.pending_submission.clone() {
            gpu.wait("clip/control/readback", sub)?;
        }
        // The map callback may be run by another thread's poll of the same
        // device just after our wait returns: wait (bounded) until it has.
        let start = std::time::Instant::now();
        while matches!(
            *gp.read.lock().unwrap_or_else(|p| p.into_inner()),
            ReadState::Pending { .. }
        ) {
            if start.elapsed() > gpu.wait_timeout() {
                return Err(Error::Timeout {
                    context: "clip/control/readback".into(),
                    seconds: gpu.wait_timeout().as_secs_f64(),
                });
            }
            let _ = gpu.device().poll(wgpu::PollType::Poll);
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Ok(())
    }

    /// The gradient pipeline's state for a checkpoint (waits for the GPU).
    pub fn gradient_state(&mut self, gpu: &Gpu) -> Result<Option<GradientState>> {
        if self.grad.is_none() {
            return Ok(None);
        }
        let s = self.stats(gpu)?;
        Ok(Some(GradientState {
            skipped: s.skipped_steps,
            scale: s.loss_scale,
            growth_tracker: s.growth_tracker,
        }))
    }

    /// Restores the gradient pipeline's state from a checkpoint.
    pub fn set_gradient_state(&mut self, gpu: &Gpu, state: &GradientState) -> Result<()> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        let gp = self.grad.as_mut().ok_or_else(|| {
            Error::invalid(
                "gradients",
                "none",
                "an optimizer with a gradient pipeline",
                "this optimizer has no gradient pipeline to restore",
            )
        })?;
        if !(state.scale > 0.0 && state.scale.is_finite()) {
            return Err(Error::invalid(
                "scale",
                state.scale,
                "a finite number > 0",
                "Invalid loss scale",
            ));
        }
        let header = ControlHeader {
            found_inf: 0,
            skipped: state.skipped as u32,
            scale: state.scale,
            growth_tracker: state.growth_tracker,
        };
        gpu.queue()
            .write_buffer(&gp.control, 0, bytemuck::bytes_of(&header));
        gp.seen_skipped = state.skipped;
        Ok(())
    }

    /// The device control block (see `clip::ControlHeader` for its layout:
    /// the loss scale is the f32 at byte offset 8), for user kernels that
    /// multiply their loss by the current scale without a readback.
    pub fn control_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grad.as_ref().map(|g| &g.control)
    }
}

// Momentum cycling for schedules.
impl Optimizer {
    /// Sets the momentum for the next steps: `momentum` of SGD and RMSprop,
    /// `beta1` of Adam and AdamW (what PyTorch's cycling schedulers set).
    ///
    /// # Errors
    /// An optimizer without momentum (Adagrad, Adadelta, or SGD / RMSprop
    /// built with momentum 0, which keep no momentum buffer), or a value out
    /// of range; nothing changes then.
    pub fn set_momentum(&mut self, momentum: f64) -> Result<()> {
        let mut algorithm = self.spec.algorithm.clone();
        match &mut algorithm {
            Algorithm::Sgd(c) if c.momentum != 0.0 => c.momentum = momentum,
            Algorithm::RmsProp(c) if c.momentum > 0.0 => c.momentum = momentum,
            Algorithm::Adam(c) => c.beta1 = momentum,
            Algorithm::AdamW(c) => c.beta1 = momentum,
            _ => {
                return Err(Error::invalid(
                    "momentum",
                    momentum,
                    "an optimizer built with momentum (SGD, RMSprop) or beta1 (Adam, AdamW)",
                    format!(
                        "{} was built without a momentum buffer",
                        self.spec.algorithm.name()
                    ),
                ));
            }
        }
        algorithm.validate()?;
        let still_has_buffer = match &algorithm {
            Algorithm::Sgd(c) => c.momentum != 0.0,
            Algorithm::RmsProp(c) => c.momentum > 0.0,
            _ => true,
        };
        if !still_has_buffer {
            return Err(Error::invalid(
                "momentum",
                momentum,
                "> 0 (the kernel was built with a momentum buffer)",
                "momentum cannot be switched off after construction",
            ));
        }
        self.spec.algorithm = algorithm;
        Ok(())
    }
}

// Every group's learning rate at once (ReduceLrOnPlateau works on a slice).
impl Optimizer {
    /// The learning rate of every group, base group first.
    pub fn lrs(&self) -> Vec<f64> {
        self.hps.iter().map(|h| h.lr).collect()
    }

    /// Sets every group's learning rate; all are checked before any is set.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};
    /// # use wgpu_optim::optim::{OptimizerSpec, SgdConfig};
    /// # use wgpu_optim::schedule::{PlateauConfig, ReduceLrOnPlateau};
    /// # fn main() -> wgpu_optim::Result<()> {
    /// # let gpu = Gpu::new_default()?;
    /// # let params = ParamSet::new(&gpu, &ParamLayout::new(&[("w", &[4][..])])?)?;
    /// # let mut opt = Optimizer::new(&gpu, &OptimizerSpec::sgd(SgdConfig::default()), &params)?;
    /// let mut plateau = ReduceLrOnPlateau::new(PlateauConfig::default())?;
    /// let mut lrs = opt.lrs();
    /// plateau.step(0.42, &mut lrs)?;   // the epoch's validation loss
    /// opt.set_lrs(&lrs)?;
    /// # Ok(()) }
    /// ```
    pub fn set_lrs(&mut self, lrs: &[f64]) -> Result<()> {
        if lrs.len() != self.hps.len() {
            return Err(Error::mismatch(format!(
                "{} learning rates for {} param groups",
                lrs.len(),
                self.hps.len()
            )));
        }
        for &lr in lrs {
            check_lr("lr", lr)?;
        }
        for (hp, &lr) in self.hps.iter_mut().zip(lrs) {
            hp.lr = lr;
        }
        Ok(())
    }
}
