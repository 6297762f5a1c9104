//! [`OptimizerSpec`]: the whole description of one optimizer step — the
//! algorithm, its param groups and the gradient pipeline (clipping, the
//! non-finite guard, loss scaling) — validated against a layout before
//! anything is allocated.

use crate::error::{Error, Result};
use crate::grad::{ClipScope, GradientConfig, LossScale, NonFinite, NormType};
use crate::layout::ParamLayout;
use crate::optim::state::{MIN_8BIT_SIZE, StateDtype};
use crate::optim::{Algorithm, MAX_GROUPS, ParamGroup};
use crate::precision::ParamUpdate;

/// The whole description of an optimizer: algorithm, param groups and the
/// gradient pipeline. The constructors (`OptimizerSpec::adam(..)`, ...) come
/// from the optimizer registry.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSpec {
    pub(crate) algorithm: Algorithm,
    pub(crate) groups: Vec<ParamGroup>,
    pub(crate) gradients: GradientConfig,
    pub(crate) state_dtype: StateDtype,
    pub(crate) min_8bit_size: u64,
    pub(crate) param_update: ParamUpdate,
    pub(crate) rounding_seed: u32,
}

/// A spec resolved against a layout: every group's config (group 0 first)
/// and each tensor's group.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The config of each param group, the base group first.
    pub groups: Vec<Algorithm>,
    /// The param group of each tensor, in layout order.
    pub assignment: Vec<usize>,
    /// The state format of each param group (before `min_8bit_size`).
    pub state_dtypes: Vec<StateDtype>,
    /// How each param group's bf16 / f16 params take the step's result.
    pub param_updates: Vec<ParamUpdate>,
    /// The part of each param group: groups that run the same kernel (the
    /// same algorithm with the same structural switches,
    /// [`ParamGroup::algorithm`]) share a part, numbered in order of their
    /// first group (the base group's part is 0).
    pub parts: Vec<usize>,
}

/// A group's kernel as checkpoints record it: the algorithm's name, its
/// override constants (the switches that choose the variant: `AMSGRAD`,
/// `NESTEROV`, `MAXIMIZE`, ...) and its states; stable across versions of
/// the config types, unlike [`part_key`].
pub(crate) fn kernel_signature(a: &Algorithm) -> String {
    let k = a.algo().kernel();
    let states: Vec<&str> = k.active.iter().map(|s| s.0).collect();
    let constants: Vec<String> = k
        .constants
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    format!(
        "{} [{}] states [{}]",
        a.name(),
        constants.join(", "),
        states.join(", ")
    )
}

/// What decides a part: the algorithm with every numeric hyperparameter
/// zeroed (its switches: `amsgrad`, `nesterov`, Muon's `adjust_lr_fn`, ...),
/// its override constants and the states it keeps.
pub(crate) fn part_key(a: &Algorithm) -> String {
    let mut shape = a.clone();
    for n in a.hyperparameter_names() {
        shape.algo_mut().set(n, 0.0);
    }
    let k = a.algo().kernel();
    let states: Vec<&str> = k.active.iter().map(|s| s.0).collect();
    format!("{shape:?}|{:?}|{states:?}", k.constants)
}

impl OptimizerSpec {
    /// A spec for `algorithm` with one group holding every tensor.
    pub fn new(algorithm: Algorithm) -> OptimizerSpec {
        OptimizerSpec {
            algorithm,
            groups: Vec::new(),
            gradients: GradientConfig::default(),
            state_dtype: StateDtype::F32,
            min_8bit_size: MIN_8BIT_SIZE,
            param_update: ParamUpdate::RoundNearest,
            rounding_seed: 0,
        }
    }
    /// How the bf16 / f16 params of every group that does not choose its own
    /// ([`ParamGroup::param_update`]) take the step's f32 result: rounded to
    /// nearest (the default, PyTorch's in-place update), through f32 master
    /// weights, or rounded stochastically. With f32 params (the
    /// [`ParamSet`](crate::ParamSet)'s
    /// [`param_dtype`](crate::ParamSet::param_dtype)) only the default
    /// applies; another is an error when the optimizer is built.
    pub fn param_update(mut self, update: ParamUpdate) -> Self {
        self.param_update = update;
        self
    }
    /// The seed of stochastic rounding's random bits (0 by default): with
    /// the same seed, two runs (and every replica of a data-parallel run)
    /// round every element alike.
    pub fn rounding_seed(mut self, seed: u32) -> Self {
        self.rounding_seed = seed;
        self
    }
    /// The base group's param update.
    pub fn base_param_update(&self) -> ParamUpdate {
        self.param_update
    }
    /// Stores the optimizer states of every group that does not choose its
    /// own ([`ParamGroup::state_dtype`]) as `dtype` (f32 by default). 8 bits
    /// serve the one-pass optimizers with moment-like states (SGD with
    /// momentum, Adam, AdamW, Adagrad, RMSprop, Adadelta, Adamax, NAdam,
    /// RAdam, Lion, ADOPT); bf16 also ASGD, Rprop, LAMB and LARS (these two
    /// with one format for all groups). Schedule-Free and centered RMSprop
    /// keep f32 states. Any other choice is an error naming the group.
    pub fn state_dtype(mut self, dtype: StateDtype) -> Self {
        self.state_dtype = dtype;
        self
    }
    /// Tensors with fewer elements keep f32 states in an 8-bit group
    /// (bitsandbytes' `min_8bit_size`, 4096 by default; 0 quantizes every
    /// tensor).
    pub fn min_8bit_size(mut self, elements: u64) -> Self {
        self.min_8bit_size = elements;
        self
    }
    /// The base group's state format.
    pub fn base_state_dtype(&self) -> StateDtype {
        self.state_dtype
    }
    /// The 8-bit size threshold.
    pub fn min_8bit_elements(&self) -> u64 {
        self.min_8bit_size
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

    /// Validates the spec against `layout`: every group's config and each
    /// tensor's group.
    ///
    /// # Errors
    /// Invalid hyperparameters (a group's field is named `groups[i].field`,
    /// its own algorithm's `groups[i].algorithm.field`), an override the
    /// group's algorithm does not have or that would change its variant, a
    /// state format the group's algorithm does not offer, more than
    /// [`MAX_GROUPS`] groups, a group that selects no tensor, a name that is
    /// not in the layout, a tensor selected by two groups, Schedule-Free
    /// beside another algorithm or with a non-finite mode that skips steps,
    /// groups of one trust-ratio kernel with different state formats, or a
    /// tensor of a Muon group that is not 2-D.
    pub fn resolve(&self, layout: &ParamLayout) -> Result<Resolved> {
        self.algorithm.validate()?;
        self.gradients.validate()?;
        if self.groups.len() + 1 > MAX_GROUPS {
            return Err(Error::LimitExceeded {
                limit: "param groups (the crate's own limit)".into(),
                needed: self.groups.len() as u64 + 1,
                available: MAX_GROUPS as u64,
                hint: "; merge groups with equal hyperparameters".into(),
            });
        }
        let mut groups = vec![self.algorithm.clone()];
        let mut state_dtypes = vec![self.state_dtype];
        let mut param_updates = vec![self.param_update];
        check_state_dtype(&self.algorithm, "state_dtype", self.state_dtype)?;
        for (i, g) in self.groups.iter().enumerate() {
            let cfg = g.resolve(&self.algorithm, i + 1)?;
            let d = g.state_dtype_override().unwrap_or(self.state_dtype);
            let field = match g.state_dtype_override() {
                Some(_) => format!("groups[{}].state_dtype", i + 1),
                // Inherited: name the field the user set, and the group.
                None => format!("state_dtype (inherited by groups[{}])", i + 1),
            };
            check_state_dtype(&cfg, &field, d)?;
            groups.push(cfg);
            state_dtypes.push(d);
            param_updates.push(g.param_update_override().unwrap_or(self.param_update));
            if let Some(missing) = g
                .listed_names()
                .iter()
                .find(|n| layout.index_of(n).is_err())
            {
                return Err(Error::invalid(
                    format!("groups[{}]", i + 1),
                    format!("{missing:?}"),
                    "names of tensors in the layout",
                    format!(
                        "param group {} names `{missing}`, which the layout does not have",
                        i + 1
                    ),
                ));
            }
        }
        let mut keys: Vec<String> = Vec::new();
        let parts: Vec<usize> = groups
            .iter()
            .map(|g| {
                let key = part_key(g);
                match keys.iter().position(|k| *k == key) {
                    Some(p) => p,
                    None => {
                        keys.push(key);
                        keys.len() - 1
                    }
                }
            })
            .collect();
        for (i, g) in groups.iter().enumerate() {
            let field = |f: &str| match i {
                0 => f.to_string(),
                _ => format!("groups[{i}].{f}"),
            };
            if !g.algo().running().is_empty() && self.gradients.nonfinite != NonFinite::Propagate {
                return Err(Error::invalid(
                    "gradients.nonfinite",
                    format!("{:?}", self.gradients.nonfinite),
                    "NonFinite::Propagate",
                    format!(
                        "{} keeps running averaging state on the host that a step skipped on the \
                         device would leave ahead of the params; skip non-finite steps on the \
                         host instead (or use another optimizer)",
                        g.name()
                    ),
                ));
            }
            if keys.len() > 1 && g.algo().swap_weights().is_some() {
                return Err(Error::invalid(
                    field("algorithm"),
                    g.name(),
                    "one algorithm for every param group with Schedule-Free",
                    format!(
                        "{} swaps every tensor between its averaged and training weights in eval \
                         mode, so it cannot share an optimizer with param groups that run another \
                         algorithm; build a second optimizer over another ParamSet",
                        g.name()
                    ),
                ));
            }
            // Optimizers that reduce per tensor (LAMB, LARS, Muon, Adafactor)
            // build their measure and reduce passes for one state format:
            // one for all the groups of their part.
            let lead = parts.iter().position(|&p| p == parts[i]).expect("own part");
            if g.algo().passes().per_tensor() && state_dtypes[i] != state_dtypes[lead] {
                return Err(Error::invalid(
                    format!("groups[{i}].state_dtype"),
                    state_dtypes[i].as_str(),
                    format!("{} (group {lead}'s)", state_dtypes[lead].as_str()),
                    format!(
                        "{} keeps one state format for all its param groups (its per-tensor \
                         norms are reduced over one block numbering)",
                        g.name()
                    ),
                ));
            }
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
        for (t, &g) in layout.tensors().iter().zip(&assignment) {
            if groups[g].algo().passes() == crate::optim::Passes::Muon && t.shape.len() != 2 {
                return Err(Error::invalid(
                    format!("tensor `{}`", t.name),
                    format!("{:?}", t.shape),
                    "a 2-D tensor (Muon orthogonalizes matrices; put other tensors in a param \
                     group that runs another algorithm: ParamGroup::algorithm)",
                    format!(
                        "Muon only supports 2D parameters whereas we found a parameter with \
                         size: {:?}",
                        t.shape
                    ),
                ));
            }
        }
        Ok(Resolved {
            groups,
            assignment,
            state_dtypes,
            param_updates,
            parts,
        })
    }
}

/// Fails unless `algorithm` can keep its states as `d`.
fn check_state_dtype(algorithm: &Algorithm, field: &str, d: StateDtype) -> Result<()> {
    let formats = algorithm.algo().kernel().formats;
    if formats.allows(d) {
        return Ok(());
    }
    let serving = |d: StateDtype| {
        Algorithm::all_defaults()
            .iter()
            .filter(|a| a.algo().kernel().formats.allows(d))
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let allowed: Vec<&str> = formats.list().iter().map(|d| d.as_str()).collect();
    Err(Error::invalid(
        field,
        d.as_str(),
        format!(
            "{} ({} in this configuration)",
            allowed.join(" or "),
            algorithm.name()
        ),
        format!(
            "{} cannot store its states as {}: bf16 states serve {}; 8-bit states serve {} \
             (RMSprop not centered)",
            algorithm.name(),
            d.as_str(),
            serving(StateDtype::Bf16),
            serving(StateDtype::Blockwise8),
        ),
    ))
}
