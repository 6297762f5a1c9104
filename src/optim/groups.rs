//! Param groups (PyTorch's meaning): a set of tensors that overrides any
//! numeric hyperparameter of the optimizer (`lr`, `weight_decay`, `l1`,
//! `beta1`, `beta2`, `eps`, `momentum`, `dampening`, `alpha`, `rho`,
//! `lr_decay`, `initial_accumulator_value`, ...). Each group is a row of the
//! kernels' uniform table, so one dispatch still covers every group of a
//! kernel.
//!
//! Structural switches (`amsgrad`, `nesterov`, `centered`, `maximize`, and
//! whether a momentum buffer exists at all) belong to the algorithm: they
//! choose the kernel variant and which states exist. A group override that
//! would change them (SGD's `momentum` from 0.9 to 0, say) is refused; give
//! such tensors a group with its own algorithm
//! ([`ParamGroup::algorithm`], which may be the same optimizer with other
//! switches), or another optimizer.

use crate::error::{Error, Result};
use crate::optim::Algorithm;
use crate::optim::state::StateDtype;
use crate::precision::ParamUpdate;

/// The hyperparameters every optimizer has, as one group uses them.
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
    pub(crate) fn of(a: &Algorithm) -> GroupHp {
        let get = |n| {
            a.get(n)
                .expect("every optimizer has lr, weight_decay and l1")
        };
        GroupHp {
            lr: get("lr"),
            weight_decay: get("weight_decay"),
            l1: get("l1"),
        }
    }
}

/// Which tensors a [`ParamGroup`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Names(Vec<String>),
    Pattern(String),
}

/// A param group: a set of tensors with their own hyperparameters
/// (PyTorch's param groups). Tensors that no group selects belong to the
/// base group (group 0), which uses the optimizer's config.
///
/// ```
/// use wgpu_optim::optim::ParamGroup;
/// let no_decay = ParamGroup::matching("*.bias").weight_decay(0.0);
/// let embeddings = ParamGroup::names(["wte"]).lr(1e-3).betas(0.9, 0.95).eps(1e-6);
/// let any = ParamGroup::matching("ln*").set("momentum", 0.8);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroup {
    selector: Selector,
    overrides: Vec<(String, f64)>,
    state_dtype: Option<StateDtype>,
    param_update: Option<ParamUpdate>,
    algorithm: Option<Algorithm>,
}

impl ParamGroup {
    /// The tensors whose names match `pattern`, where `*` matches any run of
    /// characters (`"*.bias"`, `"embed*"`).
    pub fn matching(pattern: impl Into<String>) -> ParamGroup {
        ParamGroup {
            selector: Selector::Pattern(pattern.into()),
            overrides: Vec::new(),
            state_dtype: None,
            param_update: None,
            algorithm: None,
        }
    }
    /// The tensors with exactly these names (each must exist in the layout).
    pub fn names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> ParamGroup {
        ParamGroup {
            selector: Selector::Names(names.into_iter().map(Into::into).collect()),
            overrides: Vec::new(),
            state_dtype: None,
            param_update: None,
            algorithm: None,
        }
    }
    /// Overrides hyperparameter `name` (PyTorch's name) with `value`. A name
    /// the optimizer does not have is an error when the optimizer is built.
    pub fn set(mut self, name: impl Into<String>, value: f64) -> Self {
        let name = name.into();
        self.overrides.retain(|(n, _)| *n != name);
        self.overrides.push((name, value));
        self
    }
    /// Overrides the learning rate.
    pub fn lr(self, lr: f64) -> Self {
        self.set("lr", lr)
    }
    /// Overrides the weight decay.
    pub fn weight_decay(self, wd: f64) -> Self {
        self.set("weight_decay", wd)
    }
    /// Overrides the L1 penalty.
    pub fn l1(self, l1: f64) -> Self {
        self.set("l1", l1)
    }
    /// Overrides Adam's `betas` (`beta1`, `beta2`).
    pub fn betas(self, beta1: f64, beta2: f64) -> Self {
        self.set("beta1", beta1).set("beta2", beta2)
    }
    /// Overrides `eps`.
    pub fn eps(self, eps: f64) -> Self {
        self.set("eps", eps)
    }
    /// Overrides `momentum` (SGD, RMSprop).
    pub fn momentum(self, momentum: f64) -> Self {
        self.set("momentum", momentum)
    }
    /// Stores this group's optimizer states as `dtype` (the spec's
    /// [`state_dtype`](crate::OptimizerSpec::state_dtype) otherwise): e.g.
    /// embeddings in 8 bits, norms and biases in f32.
    pub fn state_dtype(mut self, dtype: StateDtype) -> Self {
        self.state_dtype = Some(dtype);
        self
    }
    /// How this group's bf16 / f16 params take the step's f32 result (the
    /// spec's [`param_update`](crate::OptimizerSpec::param_update)
    /// otherwise): e.g. f32 master weights for norms and biases, stochastic
    /// rounding for the large matrices.
    pub fn param_update(mut self, update: ParamUpdate) -> Self {
        self.param_update = Some(update);
        self
    }
    /// The param update this group asks for, if it overrides the spec's.
    pub fn param_update_override(&self) -> Option<ParamUpdate> {
        self.param_update
    }
    /// Runs `algorithm` on this group's tensors instead of the optimizer's
    /// own, still in the same step (one compute pass and one submit): the
    /// Muon recipe, where embeddings, norms and biases take AdamW. The
    /// group's overrides apply to `algorithm`'s config. Groups running the
    /// same kernel (the same optimizer with the same structural switches)
    /// share its dispatches; each other one adds its own (one per chunk,
    /// or its passes). Clipping, the non-finite guard and loss scaling see
    /// every tensor of every group, as with one algorithm.
    ///
    /// ```
    /// use wgpu_optim::optim::{AdamWConfig, MuonConfig, OptimizerSpec, ParamGroup};
    /// let spec = OptimizerSpec::muon(MuonConfig { lr: 0.02, ..Default::default() }).group(
    ///     ParamGroup::matching("*.bias").algorithm(AdamWConfig { lr: 3e-4, ..Default::default() }),
    /// );
    /// ```
    ///
    /// Schedule-Free (whose eval mode swaps every tensor) runs alone: it can
    /// neither be a group's algorithm nor have groups that run another.
    pub fn algorithm(mut self, algorithm: impl Into<Algorithm>) -> Self {
        self.algorithm = Some(algorithm.into());
        self
    }
    /// The algorithm this group runs instead of the optimizer's, if any.
    pub fn algorithm_override(&self) -> Option<&Algorithm> {
        self.algorithm.as_ref()
    }
    /// The overrides, in the order given.
    pub fn overrides(&self) -> &[(String, f64)] {
        &self.overrides
    }
    /// The state format this group asks for, if it overrides the spec's.
    pub fn state_dtype_override(&self) -> Option<StateDtype> {
        self.state_dtype
    }
    pub(crate) fn selects(&self, name: &str) -> bool {
        match &self.selector {
            Selector::Names(n) => n.iter().any(|x| x == name),
            Selector::Pattern(p) => glob_match(p, name),
        }
    }
    pub(crate) fn describe(&self) -> String {
        match &self.selector {
            Selector::Names(n) => format!("names {n:?}"),
            Selector::Pattern(p) => format!("pattern {p:?}"),
        }
    }
    /// The names this group lists explicitly (none for a pattern).
    pub(crate) fn listed_names(&self) -> &[String] {
        match &self.selector {
            Selector::Names(n) => n,
            Selector::Pattern(_) => &[],
        }
    }

    /// The config of this group: `base` (or the group's own
    /// [`algorithm`](Self::algorithm)) with the overrides applied and
    /// validated; `index` is the group's number (1, 2, ...) for messages.
    pub(crate) fn resolve(&self, base: &Algorithm, index: usize) -> Result<Algorithm> {
        let prefix = format!("groups[{index}].");
        let base = match &self.algorithm {
            Some(own) => {
                own.validate()
                    .map_err(|e| prefix_field(e, &format!("{prefix}algorithm.")))?;
                own
            }
            None => base,
        };
        let mut cfg = base.clone();
        for (name, value) in &self.overrides {
            if !cfg.algo_mut().set(name, *value) {
                return Err(Error::invalid(
                    format!("{prefix}{name}"),
                    value,
                    format!(
                        "a hyperparameter of {}: one of {:?}",
                        base.name(),
                        base.hyperparameter_names()
                    ),
                    format!("{} has no hyperparameter `{name}`", base.name()),
                ));
            }
        }
        cfg.validate().map_err(|e| prefix_field(e, &prefix))?;
        let (k0, k1) = (base.algo().kernel(), cfg.algo().kernel());
        let states =
            |k: &crate::optim::KernelDesc| k.active.iter().map(|a| a.0).collect::<Vec<_>>();
        if k0.constants != k1.constants || states(&k0) != states(&k1) {
            return Err(Error::invalid(
                prefix.trim_end_matches('.'),
                format!("{:?}", self.overrides),
                "overrides that keep the optimizer's variant and states",
                format!(
                    "param group {index} would change which states {} keeps ({:?} instead of \
                     {:?}) or its variant; give the group its own algorithm with those \
                     switches (ParamGroup::algorithm)",
                    base.name(),
                    states(&k1),
                    states(&k0)
                ),
            ));
        }
        Ok(cfg)
    }
}

/// Puts `prefix` before the field of an [`Error::InvalidConfig`].
pub(crate) fn prefix_field(e: Error, prefix: &str) -> Error {
    match e {
        Error::InvalidConfig {
            field,
            value,
            allowed,
            message,
        } => Error::InvalidConfig {
            field: format!("{prefix}{field}"),
            value,
            allowed,
            message,
        },
        other => other,
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
