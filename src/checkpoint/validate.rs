//! What a checkpoint's `wgpu_optim` document must satisfy before anything
//! live changes: its own consistency (format, version, a step that can be
//! continued, a gradient state the device can hold, a scheduler for its
//! groups) and its agreement with the live optimizer (kind, state keys,
//! groups, layout, gradient pipeline, hyperparameters).

use std::path::Path;

use serde_json::Value;

use super::{CheckpointMeta, FORMAT, GroupMeta, Hyperparameters, LoadOptions, ck_err};
use crate::error::Result;
use crate::grad::{GradientConfig, GradientState, LossScale};
use crate::optim::{Optimizer, check_lr};
use crate::schedule::Schedule;

/// A hyperparameter to set: `(group, name, value)`.
pub(super) type Write = (usize, &'static str, f64);

/// The parsed `wgpu_optim` document.
pub(super) struct Document {
    pub(super) meta: CheckpointMeta,
    /// The loss scale as written (before rounding to f32), for messages.
    raw_scale: Option<f64>,
}

/// Parses the document of a file of `version`; version 1 kept `lr`,
/// `weight_decay` and `l1` per group, read here as a map of those three.
pub(super) fn parse(path: &Path, json: &str, version: u32) -> Result<Document> {
    let corrupt =
        |e: serde_json::Error| ck_err(path, format!("corrupt `wgpu_optim` metadata: {e}"));
    let mut v: Value = serde_json::from_str(json).map_err(corrupt)?;
    if version == 1
        && let Some(groups) = v.get_mut("groups").and_then(Value::as_array_mut)
    {
        for g in groups {
            let old = g.take();
            *g = serde_json::json!({ "hyperparameters": old });
        }
    }
    let raw_scale = v.pointer("/gradient_state/scale").and_then(Value::as_f64);
    // The error names the field's path (`training.early_stopping.config.patience`).
    let meta = serde_path_to_error::deserialize(v).map_err(|e| {
        ck_err(
            path,
            format!(
                "corrupt `wgpu_optim` metadata at `{}`: {}",
                e.path(),
                e.inner()
            ),
        )
    })?;
    Ok(Document { meta, raw_scale })
}

/// A number as a person writes it: `1e39`, `0.5`, `-1`.
fn num(x: f64) -> String {
    if x != 0.0 && !(1e-5..1e16).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// Checks `doc` (of a file of `version`) against itself and against `opt`
/// over `live_layout`, and returns the hyperparameters to set.
pub(super) fn check(
    path: &Path,
    doc: &Document,
    version: u32,
    live_layout: &[(String, Vec<usize>)],
    opt: &Optimizer,
    live_states: &[&str],
    options: LoadOptions,
) -> Result<Vec<Write>> {
    let meta = &doc.meta;
    let err = |reason: String| ck_err(path, reason);
    if meta.format != FORMAT || meta.version != version {
        return Err(err(format!(
            "the `wgpu_optim` document says format {:?} version {}, the metadata keys say \
             {FORMAT:?} version {version}",
            meta.format, meta.version
        )));
    }
    let kind = opt.algorithm_name();
    if meta.optimizer != kind {
        return Err(err(format!(
            "optimizer is {}, the live optimizer is {kind}",
            meta.optimizer
        )));
    }
    if meta.eval_mode && !opt.has_eval_mode() {
        return Err(err(format!(
            "the params were saved in eval mode, which {kind} does not have"
        )));
    }
    if meta.state_names != live_states {
        return Err(err(format!(
            "state keys {:?}, the live optimizer keeps {live_states:?}",
            meta.state_names
        )));
    }
    if meta.groups.len() != opt.num_groups() {
        return Err(err(format!(
            "{} param groups, the live optimizer has {}",
            meta.groups.len(),
            opt.num_groups()
        )));
    }
    if meta.layout != live_layout {
        return Err(err(
            "the layout (names, shapes or order) differs from the live one".into(),
        ));
    }
    // Param groups that run their own algorithm: each group's kernel and
    // each tensor's group must be the live ones (older files lack both).
    for (g, m) in meta.groups.iter().enumerate() {
        if let Some(kernel) = &m.kernel {
            let live = opt.group_config(g)?;
            let signature = crate::optim::spec::kernel_signature(live);
            if *kernel != signature {
                return Err(err(format!(
                    "param group {g} ran {kernel}; the live group runs {signature}: build the \
                     optimizer the file was saved from"
                )));
            }
        }
    }
    if !meta.tensor_groups.is_empty() {
        if meta.tensor_groups.len() != live_layout.len() {
            return Err(err(format!(
                "tensor_groups has {} entries for {} tensors",
                meta.tensor_groups.len(),
                live_layout.len()
            )));
        }
        for ((name, _), &g) in live_layout.iter().zip(&meta.tensor_groups) {
            let live = opt.group_of(name)?;
            if live != g {
                return Err(err(format!(
                    "tensor `{name}` was in param group {g}, the live optimizer puts it in \
                     group {live}: build the optimizer with the file's param groups"
                )));
            }
        }
    }
    if meta.step == u64::MAX {
        return Err(err(format!(
            "step is {}: the next step would overflow the step counter; allowed: < {} (u64::MAX)",
            meta.step,
            u64::MAX
        )));
    }
    if meta.gradient_state.is_some() != opt.control_buffer().is_some() {
        return Err(err(
            "gradient pipeline (clipping / guard / scaler) present in one side only".into(),
        ));
    }
    if let Some(gs) = &meta.gradient_state {
        validate_gradient_state(path, gs, doc.raw_scale, meta.step, opt.spec().gradients())?;
    }
    if let Some(s) = &meta.training.scheduler
        && s.num_groups() != meta.groups.len()
    {
        return Err(err(format!(
            "training.scheduler drives {} param group(s), the checkpoint has {}",
            s.num_groups(),
            meta.groups.len()
        )));
    }
    let momentum_scheduled = meta
        .training
        .scheduler
        .as_ref()
        .and_then(|s| s.schedules().first())
        .is_some_and(drives_momentum);
    plan(
        path,
        &meta.groups,
        version,
        opt,
        options,
        momentum_scheduled,
    )
}

/// Checks a gradient pipeline's state read from `path` for a run at `step`
/// with the live gradient config `config`: a loss scale finite and > 0 in
/// f32 (`raw_scale` is the value as written, before rounding to f32), 1 and
/// a growth tracker of 0 without a dynamic loss scale, a growth tracker
/// below the growth interval with one, and a skipped count that is at most
/// `step` and that the device's u32 counter can still count one more of.
pub(crate) fn validate_gradient_state(
    path: &Path,
    gs: &GradientState,
    raw_scale: Option<f64>,
    step: u64,
    config: &GradientConfig,
) -> Result<()> {
    let err = |reason: String| Err(ck_err(path, reason));
    let found = raw_scale.map_or_else(|| gs.scale.to_string(), num);
    if !(gs.scale > 0.0 && gs.scale.is_finite()) {
        let f32_note = if gs.scale.is_infinite() && raw_scale.is_some_and(f64::is_finite) {
            " (not finite in f32)"
        } else {
            ""
        };
        return err(format!(
            "gradient_state.scale (the loss scale) is {found}{f32_note}; allowed: a finite \
             number > 0 in f32"
        ));
    }
    match config.loss_scale {
        Some(LossScale::Dynamic(c)) => {
            if gs.growth_tracker >= c.growth_interval {
                return err(format!(
                    "gradient_state.growth_tracker is {}; allowed: < {}, the live loss scaler's \
                     growth_interval",
                    gs.growth_tracker, c.growth_interval
                ));
            }
        }
        _ => {
            if gs.scale != 1.0 || gs.growth_tracker != 0 {
                return err(format!(
                    "gradient_state has loss scale {found} and growth tracker {}, but the live \
                     optimizer has no dynamic loss scale (its device scale stays 1, its \
                     tracker 0)",
                    gs.growth_tracker
                ));
            }
        }
    }
    if gs.skipped > step {
        return err(format!(
            "gradient_state.skipped is {}, more than the {step} steps taken; allowed: <= step",
            gs.skipped
        ));
    }
    if gs.skipped >= u32::MAX as u64 {
        return err(format!(
            "gradient_state.skipped is {}; the device counts skipped steps in a u32 that must \
             count one more: allowed: < {} (u32::MAX)",
            gs.skipped,
            u32::MAX
        ));
    }
    Ok(())
}

/// Whether a scheduler led by `s` writes the momentum (`momentum` /
/// `beta1`) at some step, as `LrScheduler::apply` does for cycling
/// schedules. Exhaustive on purpose: a new family must say.
fn drives_momentum(s: &Schedule) -> bool {
    match s {
        Schedule::Cyclic(c) => c.config().cycle_momentum.is_some(),
        Schedule::OneCycle(c) => c.config().cycle_momentum.is_some(),
        Schedule::Sequential(q) => q.schedules().iter().any(drives_momentum),
        // Chained members are multiplicative lr factors; they give no momentum.
        Schedule::Chained(_)
        | Schedule::Constant(_)
        | Schedule::ConstantLr(_)
        | Schedule::Linear(_)
        | Schedule::Step(_)
        | Schedule::MultiStep(_)
        | Schedule::Exponential(_)
        | Schedule::Polynomial(_)
        | Schedule::CosineAnnealing(_)
        | Schedule::CosineWarmRestarts(_)
        | Schedule::WarmupCosine(_)
        | Schedule::WarmupConstant(_)
        | Schedule::FromFn(_) => false,
    }
}

/// Compares the saved hyperparameters of every group with the live ones
/// and returns those to set: `lr` always (a schedule sets it each step, so
/// it differs on every resume), the momentum field when the checkpoint's
/// scheduler cycles it, and every field with [`Hyperparameters::FromFile`];
/// any other difference is refused. The resulting group configs are
/// validated here, so setting them cannot fail.
fn plan(
    path: &Path,
    groups: &[GroupMeta],
    version: u32,
    opt: &Optimizer,
    options: LoadOptions,
    momentum_scheduled: bool,
) -> Result<Vec<Write>> {
    let mut writes = Vec::new();
    for (g, file) in groups.iter().enumerate() {
        let err = |reason: String| ck_err(path, format!("param group {g}: {reason}"));
        let live = opt.group_config(g)?;
        let names = live.hyperparameter_names();
        if let Some(extra) = file
            .hyperparameters
            .keys()
            .find(|k| !names.contains(&k.as_str()))
        {
            return Err(err(format!(
                "the file has a hyperparameter `{extra}`, which {} does not have (it has \
                 {names:?})",
                live.name()
            )));
        }
        // Version 1 kept three fields; version 2 keeps every one.
        let required: &[&str] = if version == 1 {
            &["lr", "weight_decay", "l1"]
        } else {
            names
        };
        if let Some(missing) = required
            .iter()
            .find(|n| !file.hyperparameters.contains_key(**n))
        {
            return Err(err(format!("the file has no value for `{missing}`")));
        }
        let momentum = live.algo().momentum_name();
        let mut cfg = live.clone();
        for &name in names {
            let (Some(&value), Some(current)) = (file.hyperparameters.get(name), live.get(name))
            else {
                continue;
            };
            // Running state (Schedule-Free's lr_max, weight_sum) always
            // continues from the file.
            let taken = name == "lr"
                || live.algo().running().contains(&name)
                || (momentum_scheduled && momentum == Some(name))
                || options.hyperparameters == Hyperparameters::FromFile;
            if !taken {
                if value != current {
                    return Err(err(format!(
                        "`{name}` is {} in the file but {} in the live optimizer; to take the \
                         file's values, load with `load_with(.., LoadOptions {{ hyperparameters: \
                         Hyperparameters::FromFile }})`",
                        num(value),
                        num(current)
                    )));
                }
                continue;
            }
            if value.to_bits() != current.to_bits() {
                if name == "lr" {
                    check_lr("lr", value).map_err(|e| err(e.to_string()))?;
                }
                cfg.algo_mut().set(name, value);
                writes.push((g, name, value));
            }
        }
        cfg.validate().map_err(|e| err(e.to_string()))?;
        let (a, b) = (live.algo().kernel(), cfg.algo().kernel());
        if a.constants != b.constants || a.active.len() != b.active.len() {
            return Err(err(format!(
                "the file's hyperparameters would change the kernel variant or the states {} \
                 was built with",
                live.name()
            )));
        }
    }
    Ok(writes)
}
