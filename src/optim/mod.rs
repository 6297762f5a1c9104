//! Fused optimizers: one folder per optimizer, and the registry that lists
//! them.
//!
//! Each optimizer lives in `src/optim/<name>/`: `mod.rs` (its config with
//! PyTorch's names, defaults and validation, its uniform row and the host-side
//! f64 scalars, its rustdoc with "Differences from PyTorch"), `update.wgsl`
//! (its per-element update only; the skeleton is `prelude.wgsl`) and
//! `reference.rs` (its f64 reference). The `registry!` below is the one list
//! of optimizers: adding one is a new folder plus one line there.
//!
//! Around them: [`spec`] (what the user asks for: algorithm, param groups,
//! gradient pipeline), [`groups`] (param groups, every hyperparameter per
//! group), [`runtime`] (the [`Optimizer`] that builds once and steps with one
//! submit), `prelude.wgsl` and `reference` (the f64 oracle of tests and
//! benches, not part of the public API).

mod blocks;
mod check;
pub mod groups;
#[doc(hidden)]
pub mod reference;
pub mod runtime;
pub mod spec;
pub mod state;
mod trust;

pub mod adadelta;
pub mod adafactor;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod adopt;
pub mod asgd;
pub mod lamb;
pub mod lars;
pub mod lion;
pub mod muon;
pub mod nadam;
pub mod radam;
pub mod rmsprop;
pub mod rprop;
pub mod schedule_free;
pub mod sgd;

pub use adadelta::AdadeltaConfig;
pub use adafactor::AdafactorConfig;
pub use adagrad::AdagradConfig;
pub use adam::{AdamConfig, AdamWConfig};
pub use adamax::AdamaxConfig;
pub use adopt::AdoptConfig;
pub use asgd::AsgdConfig;
pub use groups::{GroupHp, ParamGroup};
pub use lamb::LambConfig;
pub use lars::LarsConfig;
pub use lion::LionConfig;
pub use muon::{AdjustLr, MuonConfig};
pub use nadam::NAdamConfig;
pub use radam::RAdamConfig;
pub use rmsprop::RmsPropConfig;
pub use rprop::RpropConfig;
pub use runtime::{BLOCK_ELEMS, Dispatch, MAX_GROUPS, Optimizer, PassTimestamps};
pub use schedule_free::adamw::ScheduleFreeAdamWConfig;
pub use schedule_free::sgd::ScheduleFreeSgdConfig;
pub use sgd::SgdConfig;
pub use spec::OptimizerSpec;
pub use state::{StateData, StateDtype};

pub(crate) use check::{check_adam_like, check_eps, check_lr, check_min, check_unit};

use crate::error::Result;

/// What an optimizer's kernel needs: its update source (assembled after the
/// shared prelude), its state slots and the variant.
pub(crate) struct KernelDesc {
    /// The kernel family, for labels and the pipeline cache (`adam`, `sgd`).
    pub(crate) name: &'static str,
    /// `gpu/common.wgsl` + `optim/prelude.wgsl` + the optimizer's
    /// `update.wgsl`; [`KernelDesc::assemble`] adds the roles and the entry
    /// point.
    pub(crate) source: &'static str,
    /// State names in binding order (bindings 6, 7, ...).
    pub(crate) slots: &'static [&'static str],
    /// The state formats this configuration may use (`optim::state`), with
    /// each slot's dynamic map for 8 bits: bitsandbytes' choice where it has
    /// the optimizer (the first state signed, the second unsigned;
    /// RMSprop's and Adagrad's one state signed), else the unsigned map for
    /// non-negative states.
    pub(crate) formats: state::StateFormats,
    /// The states this configuration keeps, with their initial value (in
    /// f64 for the reference; the device stores it rounded to f32).
    pub(crate) active: Vec<(&'static str, f64)>,
    /// The optimizer's own override constants (the prelude adds its own).
    pub(crate) constants: Vec<(&'static str, f64)>,
}

/// How an optimizer's step is laid out in passes, which chooses its
/// kernel's entry point and bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Passes {
    /// One dispatch per chunk (`single_pass.wgsl`).
    OnePass,
    /// Measure, reduce per tensor, apply (`trust/passes.wgsl`: LAMB, LARS).
    Trust,
    /// Measure, reduce per matrix, the Newton-Schulz products, apply
    /// (`muon/passes.wgsl`, `muon/ns.wgsl`).
    Muon,
    /// Row and column sums, their finish, measure, reduce per tensor, apply
    /// (`adafactor/passes.wgsl`).
    Adafactor,
}

impl Passes {
    /// Whether the step reduces per tensor (binding 6 and 7 are the
    /// passes' buffers; the states start at 8).
    pub(crate) fn per_tensor(self) -> bool {
        self != Passes::OnePass
    }
}

/// The entry point of one-pass kernels (`single_pass.wgsl`).
const SINGLE_PASS: &str = include_str!("single_pass.wgsl");
/// The entry point of one-pass kernels with 8-bit states.
const SINGLE_PASS_Q8: &str = include_str!("single_pass_q8.wgsl");

impl KernelDesc {
    /// The states this configuration keeps with their dynamic maps.
    pub(crate) fn active_maps(&self) -> Vec<(&'static str, state::QMap)> {
        self.active
            .iter()
            .map(|&(n, _)| {
                let s = self.slots.iter().position(|x| *x == n);
                let s = s.expect("every kept state has a slot");
                let map = match self.formats {
                    state::StateFormats::All(m) => m[s],
                    _ => state::QMap::Signed,
                };
                (n, map)
            })
            .collect()
    }

    /// The bindings of the kernel for tensors whose states are `dtype` and
    /// whose params and grads are stored as `storage` says, in binding
    /// order: step and rows, blocks, control, param, grad; the per-tensor
    /// passes' two buffers; the state slots; Muon's matrix or Adafactor's
    /// factors; the 8-bit `absmax` and maps; the f32 master last.
    pub(crate) fn bindings(
        &self,
        passes: Passes,
        dtype: state::StateDtype,
        storage: crate::precision::ParamStorage,
    ) -> Vec<crate::gpu::Slot> {
        use crate::gpu::Slot;
        let mut slots = vec![
            Slot::Uniform,
            Slot::Uniform,
            Slot::StorageRead,
            Slot::StorageRead,
            Slot::StorageReadWrite,
            Slot::StorageRead,
        ];
        if passes.per_tensor() {
            slots.extend(trust::SLOTS);
        }
        slots.extend(self.slots.iter().map(|_| Slot::StorageReadWrite));
        if passes == Passes::Muon {
            slots.push(muon::MATRIX_SLOT);
        }
        if passes == Passes::Adafactor {
            slots.extend(adafactor::FACTORS_SLOTS);
        }
        if dtype == state::StateDtype::Blockwise8 {
            // absmax, then the dynamic maps.
            slots.extend([Slot::StorageReadWrite, Slot::Uniform]);
        }
        if storage.master {
            slots.push(Slot::StorageReadWrite);
        }
        slots
    }

    /// The whole kernel for tensors whose states are `dtype` and params
    /// and grads `storage`: the source, the generated roles
    /// (`state::roles_wgsl`), the entry point (the trust passes' for LAMB
    /// and LARS, Muon's own).
    pub(crate) fn assemble(
        &self,
        passes: Passes,
        dtype: state::StateDtype,
        storage: crate::precision::ParamStorage,
    ) -> String {
        let first = if passes.per_tensor() {
            6 + trust::SLOTS.len() as u32
        } else {
            6
        };
        let entry = match (passes, dtype) {
            (Passes::Trust, _) => trust::PASSES_WGSL,
            (Passes::Muon, _) => muon::PASSES_WGSL,
            (Passes::Adafactor, _) => adafactor::PASSES_WGSL,
            (Passes::OnePass, state::StateDtype::Blockwise8) => SINGLE_PASS_Q8,
            (Passes::OnePass, _) => SINGLE_PASS,
        };
        let master = storage
            .master
            .then(|| self.bindings(passes, dtype, storage).len() as u32 - 1);
        let roles = state::roles_wgsl(
            first,
            self.slots,
            &self.active_maps(),
            dtype,
            (storage, master),
        );
        format!("{}{roles}{entry}", self.source)
    }
}

/// One row's weight-decay pair for `penalize` (`prelude.wgsl`), from f64:
/// `(weight_decay, 1)` for L2, `(0, 1 - lr * weight_decay)` decoupled.
pub(crate) fn decay_terms(lr: f64, weight_decay: f64, decoupled: bool) -> (f32, f32) {
    if decoupled {
        (0.0, (1.0 - lr * weight_decay) as f32)
    } else {
        (weight_decay as f32, 1.0)
    }
}

/// The per-optimizer hooks of the generic runtime and reference. A config
/// type implements it in its folder; `registry!` turns the list of configs
/// into [`Algorithm`].
pub(crate) trait Algo: Hyperparameters {
    /// Checks every hyperparameter (PyTorch's wording), in f64 and in the
    /// f32 the device computes with.
    fn validate(&self) -> Result<()>;
    /// The kernel, its states and its variant.
    fn kernel(&self) -> KernelDesc;
    /// The uniform row of one param group (whose config this is) for step
    /// `t` (1-based), as bytes: host-side scalars computed in f64.
    fn row(&self, t: u64) -> Vec<u8>;
    /// The hyperparameter that momentum-cycling schedules set (`momentum`,
    /// `beta1`), if this configuration keeps a momentum.
    fn momentum_name(&self) -> Option<&'static str> {
        None
    }
    /// One element of the f64 reference: `p` updated in place from the
    /// processed gradient `g` at step `t`; `st` holds the element's states in
    /// the order of `KernelDesc::active`. Not called for an optimizer that
    /// returns [`trust`](Self::trust) (its reference is per tensor).
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        let _ = (t, p, g, st);
        unreachable!("a trust-ratio optimizer's reference is its `Trust`");
    }
    /// The per-tensor trust ratio's f64 reference, for the optimizers whose
    /// kernel is `trust/passes.wgsl`'s three passes (LAMB, LARS).
    fn trust(&self) -> Option<&dyn trust::Trust> {
        None
    }
    /// The passes of a step (from [`trust`](Self::trust) unless the
    /// optimizer says otherwise).
    fn passes(&self) -> Passes {
        if self.trust().is_some() {
            Passes::Trust
        } else {
            Passes::OnePass
        }
    }
    /// The f64 reference of an optimizer whose update needs the whole
    /// tensor and its shape (Muon, Adafactor).
    fn tensor_reference(&self) -> Option<&dyn TensorReference> {
        None
    }
    /// The states a tensor of `shape` keeps, with their element counts,
    /// when they depend on its shape (Adafactor's factored `row_var` and
    /// `col_var`); `None`: the states of `KernelDesc::active`, one value
    /// per element.
    fn tensor_states(&self, shape: &[usize]) -> Option<Vec<(&'static str, usize)>> {
        let _ = shape;
        None
    }
    /// Advances the running state the config keeps for step `t`
    /// (Schedule-Free's `lr_max`, `weight_sum`), before `row(t)` and
    /// `reference` of that step. The runtime and the reference call it once
    /// per applied step.
    fn advance(&mut self, t: u64) {
        let _ = t;
    }
    /// The hyperparameter names that are running state, not settings
    /// (`advance` writes them; checkpoints restore them, never compare them).
    fn running(&self) -> &'static [&'static str] {
        &[]
    }
    /// The lerp weights toward the state `z` of the eval and train swaps
    /// (Schedule-Free), if this optimizer has an eval mode.
    fn swap_weights(&self) -> Option<(f64, f64)> {
        None
    }
}

/// The f64 reference of one step of one whole tensor, for the optimizers
/// whose update is not elementwise (Muon's orthogonalized matrix,
/// Adafactor's factored moments and RMS clipping).
pub(crate) trait TensorReference {
    /// Updates `p` (of `shape`) in place at step `t` from its processed
    /// gradient `g`; `st` holds its states in the order of
    /// `KernelDesc::active` (or `Algo::tensor_states`).
    fn step_tensor(&self, t: f64, shape: &[usize], p: &mut [f64], g: &[f64], st: &mut [Vec<f64>]);
}

/// Named numeric hyperparameters of a config, read and written by name, so
/// that a param group can override any of them (PyTorch's param groups).
/// Implemented with `hyperparameters!`.
pub(crate) trait Hyperparameters {
    /// The names, PyTorch's (`lr`, `beta1`, `momentum`, ...).
    fn names(&self) -> &'static [&'static str];
    /// The value of `name`, if the config has it.
    fn get(&self, name: &str) -> Option<f64>;
    /// Sets `name`; false if the config has no such hyperparameter.
    fn set(&mut self, name: &str, value: f64) -> bool;
}

/// Implements `Hyperparameters` for a config from its numeric fields.
macro_rules! hyperparameters {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl $crate::optim::Hyperparameters for $t {
            fn names(&self) -> &'static [&'static str] {
                &[$(stringify!($f)),*]
            }
            fn get(&self, name: &str) -> Option<f64> {
                match name {
                    $(stringify!($f) => Some(self.$f),)*
                    _ => None,
                }
            }
            fn set(&mut self, name: &str, value: f64) -> bool {
                match name {
                    $(stringify!($f) => {
                        self.$f = value;
                        true
                    })*
                    _ => false,
                }
            }
        }
    };
}
pub(crate) use hyperparameters;

/// The one list of optimizers: `Variant(Config) "name" constructor`, one
/// line each. It defines [`Algorithm`], its dispatch to each config's
/// `Algo` hooks, and the `OptimizerSpec` constructors.
macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident($config:ty) $name:literal $ctor:ident;)*) => {
        /// The optimizer algorithm and its configuration.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Algorithm {
            $($(#[$doc])* $variant($config),)*
        }

        impl Algorithm {
            pub(crate) fn algo(&self) -> &dyn Algo {
                match self {
                    $(Algorithm::$variant(c) => c,)*
                }
            }
            pub(crate) fn algo_mut(&mut self) -> &mut dyn Algo {
                match self {
                    $(Algorithm::$variant(c) => c,)*
                }
            }
            /// The lower-case name (`sgd`, `adam`, `adamw`, ...), as in reports.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Algorithm::$variant(_) => $name,)*
                }
            }
            /// The default configuration of every registered optimizer.
            #[doc(hidden)]
            pub fn all_defaults() -> Vec<Algorithm> {
                vec![$(Algorithm::$variant(<$config>::default()),)*]
            }
        }

        $(
            impl From<$config> for Algorithm {
                fn from(c: $config) -> Algorithm {
                    Algorithm::$variant(c)
                }
            }
        )*

        impl OptimizerSpec {
            $(
                #[doc = concat!("A spec for `", $name, "`.")]
                pub fn $ctor(c: $config) -> Self {
                    Self::new(Algorithm::$variant(c))
                }
            )*
        }
    };
}

registry! {
    /// Stochastic gradient descent, see [`SgdConfig`].
    Sgd(SgdConfig) "sgd" sgd;
    /// Adam (L2 weight decay), see [`AdamConfig`].
    Adam(AdamConfig) "adam" adam;
    /// AdamW (decoupled weight decay), see [`AdamWConfig`].
    AdamW(AdamWConfig) "adamw" adamw;
    /// Adagrad, see [`AdagradConfig`].
    Adagrad(AdagradConfig) "adagrad" adagrad;
    /// Adadelta, see [`AdadeltaConfig`].
    Adadelta(AdadeltaConfig) "adadelta" adadelta;
    /// RMSprop, see [`RmsPropConfig`].
    RmsProp(RmsPropConfig) "rmsprop" rmsprop;
    /// Adamax, see [`AdamaxConfig`].
    Adamax(AdamaxConfig) "adamax" adamax;
    /// NAdam, see [`NAdamConfig`].
    NAdam(NAdamConfig) "nadam" nadam;
    /// RAdam, see [`RAdamConfig`].
    RAdam(RAdamConfig) "radam" radam;
    /// Averaged SGD, see [`AsgdConfig`].
    Asgd(AsgdConfig) "asgd" asgd;
    /// Rprop, see [`RpropConfig`].
    Rprop(RpropConfig) "rprop" rprop;
    /// Lion, see [`LionConfig`].
    Lion(LionConfig) "lion" lion;
    /// ADOPT, see [`AdoptConfig`].
    Adopt(AdoptConfig) "adopt" adopt;
    /// LAMB, see [`LambConfig`].
    Lamb(LambConfig) "lamb" lamb;
    /// LARS, see [`LarsConfig`].
    Lars(LarsConfig) "lars" lars;
    /// Muon, see [`MuonConfig`].
    Muon(MuonConfig) "muon" muon;
    /// Adafactor, see [`AdafactorConfig`].
    Adafactor(AdafactorConfig) "adafactor" adafactor;
    /// Schedule-Free AdamW, see [`ScheduleFreeAdamWConfig`].
    ScheduleFreeAdamW(ScheduleFreeAdamWConfig) "schedule_free_adamw" schedule_free_adamw;
    /// Schedule-Free SGD, see [`ScheduleFreeSgdConfig`].
    ScheduleFreeSgd(ScheduleFreeSgdConfig) "schedule_free_sgd" schedule_free_sgd;
}

impl Algorithm {
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
        GroupHp::of(self)
    }
    /// The value of hyperparameter `name` (`lr`, `beta1`, ...), if this
    /// algorithm has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.algo().get(name)
    }
    /// The names of the hyperparameters a param group may override.
    pub fn hyperparameter_names(&self) -> &'static [&'static str] {
        self.algo().names()
    }
    /// The hyperparameters that are running state the optimizer advances
    /// itself (Schedule-Free's `lr_max`, `weight_sum`; empty for the others):
    /// host-side f64, checkpoints restore them.
    pub fn running_state_names(&self) -> &'static [&'static str] {
        self.algo().running()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::validate_every_variant;
    use crate::grad::device::GradPipeline;
    use crate::precision::ParamDtype;

    #[test]
    fn every_assembled_kernel_variant_validates_with_naga() {
        let mut host: Vec<&str> = GradPipeline::kernel_constants(&Default::default())
            .iter()
            .map(|c| c.0)
            .collect();
        host.extend(["WEIGHT_DECAY", "L1"]);
        let mut variants = 0;
        // The defaults, and the configurations that keep every state (their
        // 8-bit stores all reduce over the workgroup).
        let mut all = Algorithm::all_defaults();
        all.push(Algorithm::Sgd(SgdConfig {
            momentum: 0.9,
            ..Default::default()
        }));
        all.push(Algorithm::RmsProp(RmsPropConfig {
            momentum: 0.9,
            centered: true,
            ..Default::default()
        }));
        all.push(Algorithm::Adam(AdamConfig {
            amsgrad: true,
            ..Default::default()
        }));
        for a in all {
            let k = a.algo().kernel();
            let mut names = host.clone();
            names.extend(k.constants.iter().map(|c| c.0));
            assert!(k.source.starts_with("// "), "{}: header comment", a.name());
            let passes = a.algo().passes();
            for d in k.formats.list() {
                let label = format!("{} ({})", a.name(), d.as_str());
                let f32s = Default::default();
                variants += validate_every_variant(&label, &k.assemble(passes, d, f32s), &names);
            }
            // Each kind of param and grad storage, with the states in f32.
            for (param, grad, master) in [
                (ParamDtype::Bf16, ParamDtype::Bf16, false),
                (ParamDtype::Bf16, ParamDtype::F32, true),
                (ParamDtype::F16, ParamDtype::F16, true),
            ] {
                let storage = crate::precision::ParamStorage {
                    param,
                    grad,
                    master,
                };
                let label = format!("{} ({})", a.name(), storage.key());
                let d = state::StateDtype::F32;
                crate::gpu::layout_check::parse(&label, &k.assemble(passes, d, storage));
            }
            if let state::StateFormats::All(_) = k.formats {
                let storage = crate::precision::ParamStorage {
                    param: ParamDtype::Bf16,
                    grad: ParamDtype::Bf16,
                    master: true,
                };
                let d = state::StateDtype::Blockwise8;
                let label = format!("{} (8bit, {})", a.name(), storage.key());
                crate::gpu::layout_check::parse(&label, &k.assemble(passes, d, storage));
            }
        }
        assert!(variants >= 17 * 16, "{variants} variants");
    }
}
