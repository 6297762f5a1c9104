//! Checkpoints: save and resume the whole training state, losing nothing.
//!
//! # File format
//! A [safetensors](https://github.com/huggingface/safetensors) file, so
//! Python opens it with `safetensors.torch.load_file`:
//! - `param.<tensor>`: each parameter, F32, with its shape;
//! - `state.<tensor>.<key>`: each optimizer state with PyTorch's keys
//!   (`exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`, `sum`,
//!   `square_avg`, `acc_delta`, `grad_avg`);
//! - `__metadata__`: `format` = `wgpu-optim-checkpoint`, `version` = `1`,
//!   and `wgpu_optim` = one JSON document ([`CheckpointMeta`]): optimizer
//!   kind, state keys, step count, each param group's `lr`, `weight_decay`
//!   and `l1`, the gradient pipeline's state (loss scale, skipped steps), the
//!   layout, an FNV-1a 64 checksum of every tensor, and the caller's
//!   [`TrainingState`] (scheduler position, plateau, early stopping, epoch and
//!   free-form `extra` entries).
//!
//! [`export_params`] writes the parameters alone under their plain names.
//!
//! # Guarantees
//! - **Atomic**: written to a temporary file in the same folder, flushed and
//!   `fsync`ed, then renamed over the target, and the folder is synced; a
//!   crash mid-write leaves the previous checkpoint intact. Every save has
//!   a temporary file of its own (`.NAME.tmp-PID-COUNTER-NANOS`), so saves
//!   racing for one path (threads or processes) never mix their bytes:
//!   **the last writer wins**, and the file at the path is always one whole
//!   checkpoint — one of the racing saves, not necessarily the one that
//!   returned last.
//! - **Bounded memory**: tensors stream one at a time between the GPU and
//!   the file. Saving reads each tensor from the GPU twice (once for its
//!   checksum, which the header needs before the data); loading reads each
//!   tensor's bytes twice (verify, then upload). The host never holds more
//!   than the largest tensor.
//! - **Validated before anything changes**: format, version, optimizer kind,
//!   state keys, group count, layout (names, shapes, order), every tensor's
//!   presence, dtype, shape and byte range, the file length (truncation) and
//!   every checksum are checked before the first byte reaches the GPU.

mod reader;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::early_stopping::EarlyStopping;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::grad::GradientState;
use crate::optim::Optimizer;
use crate::params::ParamSet;
use crate::schedule::{LrScheduler, ReduceLrOnPlateau};
use reader::Reader;
use write::{Entry, checksums, write_atomic};

/// `format` of a full checkpoint.
pub const FORMAT: &str = "wgpu-optim-checkpoint";
/// `format` of a parameters-only file.
pub const PARAMS_FORMAT: &str = "wgpu-optim-params";
/// The version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Largest header accepted (as the safetensors crate: 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// Host-side training state saved with a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs completed.
    pub epoch: u64,
    /// The learning-rate scheduler (its schedules and position).
    pub scheduler: Option<LrScheduler>,
    /// ReduceLROnPlateau's state.
    pub plateau: Option<ReduceLrOnPlateau>,
    /// Early stopping's state.
    pub early_stopping: Option<EarlyStopping>,
    /// Anything else a component wants to keep, by component name.
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One param group's hyperparameters as saved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupMeta {
    /// Learning rate at save time.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// L1 penalty.
    pub l1: f64,
}

/// The JSON document under `__metadata__["wgpu_optim"]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// `sgd`, `adam`, `adamw`, `adagrad`, `adadelta` or `rmsprop`.
    pub optimizer: String,
    /// The optimizer's state keys.
    pub state_names: Vec<String>,
    /// Steps submitted (`Optimizer::step_count`).
    pub step: u64,
    /// Each param group, base group first.
    pub groups: Vec<GroupMeta>,
    /// The gradient pipeline's state, when it has one.
    pub gradient_state: Option<GradientState>,
    /// `(name, shape)` of every tensor, in layout order.
    pub layout: Vec<(String, Vec<usize>)>,
    /// FNV-1a 64 of each tensor's bytes, as 16 hex digits.
    pub checksums: BTreeMap<String, String>,
    /// The caller's state.
    pub training: TrainingState,
}

/// FNV-1a, 64 bits: a checksum to catch corruption (not an authenticator).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn ck_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn param_entries<'a>(gpu: &'a Gpu, params: &'a ParamSet, prefix: &str) -> Vec<Entry<'a>> {
    params
        .layout()
        .tensors()
        .iter()
        .map(|t| {
            let name = t.name.clone();
            Entry {
                name: format!("{prefix}{}", t.name),
                shape: t.shape.clone(),
                read: Box::new(move || params.read(gpu, &name)),
            }
        })
        .collect()
}

/// Saves parameters, optimizer state and `training` to `path` atomically.
///
/// ```no_run
/// # use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet, checkpoint};
/// # use wgpu_optim::optim::{AdamConfig, OptimizerSpec};
/// # fn main() -> wgpu_optim::Result<()> {
/// # let gpu = Gpu::new_default()?;
/// # let mut params = ParamSet::new(&gpu, &ParamLayout::new(&[("w", &[4][..])])?)?;
/// # let mut opt = Optimizer::new(&gpu, &OptimizerSpec::adam(AdamConfig::default()), &params)?;
/// checkpoint::save("run.safetensors".as_ref(), &gpu, &params, &mut opt, &Default::default())?;
/// let training = checkpoint::load("run.safetensors".as_ref(), &gpu, &mut params, &mut opt)?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Checkpoint`] for I/O failures or state that cannot be serialized
/// (a `Schedule::from_fn` closure); the previous file at `path` is intact then.
pub fn save(
    path: &Path,
    gpu: &Gpu,
    params: &ParamSet,
    opt: &mut Optimizer,
    training: &TrainingState,
) -> Result<()> {
    opt.check_params(gpu, params)?;
    let gradient_state = opt.gradient_state(gpu)?;
    let opt: &Optimizer = opt;
    let mut entries = param_entries(gpu, params, "param.");
    let state_names = opt.state_names();
    for t in params.layout().tensors() {
        for &s in &state_names {
            let name = t.name.clone();
            entries.push(Entry {
                name: format!("state.{}.{s}", t.name),
                shape: t.shape.clone(),
                read: Box::new(move || opt.read_state(gpu, s, &name)),
            });
        }
    }
    let groups = (0..opt.num_groups())
        .map(|g| {
            let hp = opt.group_hp(g)?;
            Ok(GroupMeta {
                lr: hp.lr,
                weight_decay: hp.weight_decay,
                l1: hp.l1,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = CheckpointMeta {
        format: FORMAT.into(),
        version: VERSION,
        optimizer: opt.spec().algorithm().name().into(),
        state_names: state_names.iter().map(|s| s.to_string()).collect(),
        step: opt.step_count(),
        groups,
        gradient_state,
        layout: layout_of(params),
        checksums: checksums(&entries)?,
        training: training.clone(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| {
        ck_err(
            path,
            format!("the training state cannot be serialized: {e}"),
        )
    })?;
    let info = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        ("wgpu_optim".to_string(), json),
    ]);
    write_atomic(path, &entries, info)
}

fn layout_of(params: &ParamSet) -> Vec<(String, Vec<usize>)> {
    params
        .layout()
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect()
}

/// Loads a checkpoint written by [`save`] into `params` and `opt`, and
/// returns the saved [`TrainingState`].
///
/// # Errors
/// [`Error::Checkpoint`] naming what differs — format or version, optimizer
/// kind, state keys, groups, layout, a missing or extra tensor, a dtype or
/// shape, truncation, a checksum — and nothing live has changed then.
pub fn load(
    path: &Path,
    gpu: &Gpu,
    params: &mut ParamSet,
    opt: &mut Optimizer,
) -> Result<TrainingState> {
    opt.check_params(gpu, params)?;
    let mut r = Reader::open(path)?;
    r.check_format(FORMAT)?;
    let meta: CheckpointMeta = serde_json::from_str(
        r.metadata
            .get("wgpu_optim")
            .ok_or_else(|| ck_err(path, "no `wgpu_optim` metadata"))?,
    )
    .map_err(|e| ck_err(path, format!("corrupt `wgpu_optim` metadata: {e}")))?;
    let kind = opt.spec().algorithm().name();
    if meta.optimizer != kind {
        return Err(ck_err(
            path,
            format!(
                "optimizer is {}, the live optimizer is {kind}",
                meta.optimizer
            ),
        ));
    }
    let live_states: Vec<String> = opt.state_names().iter().map(|s| s.to_string()).collect();
    if meta.state_names != live_states {
        return Err(ck_err(
            path,
            format!(
                "state keys {:?}, the live optimizer keeps {live_states:?}",
                meta.state_names
            ),
        ));
    }
    if meta.groups.len() != opt.num_groups() {
        return Err(ck_err(
            path,
            format!(
                "{} param groups, the live optimizer has {}",
                meta.groups.len(),
                opt.num_groups()
            ),
        ));
    }
    let live_layout = layout_of(params);
    if meta.layout != live_layout {
        return Err(ck_err(
            path,
            "the layout (names, shapes or order) differs from the live one",
        ));
    }
    if meta.gradient_state.is_some() != opt.control_buffer().is_some() {
        return Err(ck_err(
            path,
            "gradient pipeline (clipping / guard / scaler) present in one side only",
        ));
    }
    let mut expected = Vec::new();
    for (name, shape) in &live_layout {
        expected.push((format!("param.{name}"), shape.clone()));
        for s in &live_states {
            expected.push((format!("state.{name}.{s}"), shape.clone()));
        }
    }
    r.check_tensors(&expected)?;
    for g in &meta.groups {
        crate::optim::check_lr("lr", g.lr).map_err(|e| ck_err(path, e.to_string()))?;
    }
    r.verify_checksums(&meta.checksums)?;
    // Everything checked: now change the live state.
    for (name, _) in &live_layout {
        let v = r.read(&format!("param.{name}"))?;
        params.write(gpu, name, &v)?;
        for s in &live_states {
            let v = r.read(&format!("state.{name}.{s}"))?;
            opt.write_state(gpu, s, name, &v)?;
        }
    }
    opt.set_step_count(meta.step);
    for (g, m) in meta.groups.iter().enumerate() {
        opt.set_lr(g, m.lr)?;
    }
    if let Some(gs) = &meta.gradient_state {
        opt.set_gradient_state(gpu, gs)?;
    }
    Ok(meta.training)
}

/// Writes the parameters alone, under their plain names (for inference).
pub fn export_params(path: &Path, gpu: &Gpu, params: &ParamSet) -> Result<()> {
    let entries = param_entries(gpu, params, "");
    let json =
        serde_json::to_string(&checksums(&entries)?).map_err(|e| ck_err(path, e.to_string()))?;
    let info = HashMap::from([
        ("format".to_string(), PARAMS_FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        ("checksums".to_string(), json),
    ]);
    write_atomic(path, &entries, info)
}

/// Writes a device snapshot of `params` (e.g. early stopping's best
/// weights) in the format of [`export_params`].
pub fn export_snapshot(
    path: &Path,
    gpu: &Gpu,
    params: &ParamSet,
    snap: &crate::params::ParamSnapshot,
) -> Result<()> {
    let entries: Vec<Entry<'_>> = params
        .layout()
        .tensors()
        .iter()
        .map(|t| {
            let name = t.name.clone();
            Entry {
                name: t.name.clone(),
                shape: t.shape.clone(),
                read: Box::new(move || params.read_snapshot(gpu, snap, &name)),
            }
        })
        .collect();
    let json =
        serde_json::to_string(&checksums(&entries)?).map_err(|e| ck_err(path, e.to_string()))?;
    let info = HashMap::from([
        ("format".to_string(), PARAMS_FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        ("checksums".to_string(), json),
    ]);
    write_atomic(path, &entries, info)
}

/// Reads parameters written by [`export_params`] into `params`, after
/// checking names, shapes, dtypes, length and checksums.
pub fn import_params(path: &Path, gpu: &Gpu, params: &mut ParamSet) -> Result<()> {
    let mut r = Reader::open(path)?;
    r.check_format(PARAMS_FORMAT)?;
    let sums: BTreeMap<String, String> = serde_json::from_str(
        r.metadata
            .get("checksums")
            .ok_or_else(|| ck_err(path, "no checksums in the metadata"))?,
    )
    .map_err(|e| ck_err(path, format!("corrupt checksums: {e}")))?;
    let layout = layout_of(params);
    r.check_tensors(&layout)?;
    r.verify_checksums(&sums)?;
    for (name, _) in &layout {
        let v = r.read(name)?;
        params.write(gpu, name, &v)?;
    }
    Ok(())
}
