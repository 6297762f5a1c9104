//! Checkpoints: save and resume the whole training state, losing nothing.
//!
//! # File format
//! A [safetensors](https://github.com/huggingface/safetensors) file, so
//! Python opens it with `safetensors.torch.load_file`:
//! - `param.<tensor>`: each parameter, F32, with its shape;
//! - `state.<tensor>.<key>`: each optimizer state with PyTorch's keys
//!   (`exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`, `sum`,
//!   `square_avg`, `acc_delta`, `grad_avg`, ...), in the format the
//!   optimizer stores it ([`StateDtype`]): F32, BF16, or U8 codes of
//!   bitsandbytes' blockwise quantization with
//! - `absmax.<tensor>.<key>`: their F32 absmax, one per block of 256
//!   elements of each tensor piece (one piece unless the tensor straddles a
//!   chunk boundary; the live optimizer must have the same pieces);
//! - `__metadata__`, exactly four keys: `format` = `wgpu-optim-checkpoint`,
//!   `version` = `2`, `wgpu_optim` = one JSON document ([`CheckpointMeta`]):
//!   optimizer kind, state keys, step count, every hyperparameter of each
//!   param group by name ([`GroupMeta`]), the gradient pipeline's state
//!   (loss scale, growth tracker, skipped steps), the layout, an FNV-1a 64
//!   checksum of every tensor, and the caller's [`TrainingState`] (scheduler
//!   position, plateau, early stopping, epoch and free-form `extra`
//!   entries); and `wgpu_optim_checksum` = the FNV-1a 64 of the document's
//!   UTF-8 bytes, as 16 lower-case hex digits.
//!
//! FNV-1a 64 starts from `0xcbf29ce484222325` and, for each byte, XORs it in
//! and multiplies by `0x100000001b3` (mod 2^64). It catches corruption; it
//! is not an authenticator.
//!
//! Version 1 (earlier builds) had no `wgpu_optim_checksum` and kept only
//! `lr`, `weight_decay` and `l1` per group. Such files still load, with
//! every check below except the metadata checksum (their document cannot be
//! verified) and with those three hyperparameters compared.
//!
//! [`export_params`] writes the parameters alone under their plain names
//! (`format` = `wgpu-optim-params`, version [`PARAMS_VERSION`], and
//! `checksums`, the tensors' FNV-1a 64).
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
//!   tensor's bytes twice (verify, then verify again and upload). The host
//!   never holds more than the largest tensor.
//! - **Every byte verified or refused**: the header is parsed by hand from
//!   a bounded read; a key that appears twice, an unknown field of a tensor
//!   entry and an unknown metadata key are refused; `format` and `version`
//!   must be known; the document must match its checksum; every tensor's
//!   bytes must match theirs; and the tensors must tile the data section
//!   end to end (no overlap, no hole, no padding, nothing past the end of
//!   the file — as Python's safetensors requires), with checked arithmetic
//!   on every offset. No content of a file makes a load panic.
//! - **The document says only the truth**: it must agree with itself (its
//!   format and version, checksums naming exactly the file's tensors, a
//!   step below `u64::MAX` so that the run can continue, at most `step`
//!   skipped steps and fewer than `u32::MAX` (the device's counter), a loss
//!   scale finite and > 0 in f32, a growth tracker below the live scaler's
//!   interval — or scale 1 and tracker 0 without a dynamic loss scale — and
//!   a scheduler for as many groups as the file has) and with the live
//!   optimizer: the optimizer was built for the `ParamSet` (both for save
//!   and load), kind, state keys, group count, layout (names, shapes,
//!   order), the presence of a gradient pipeline, and every hyperparameter
//!   of every group (see [`Hyperparameters`]: learning rates, and a
//!   momentum that the saved scheduler cycles, are taken from the file; the
//!   rest must match unless [`Hyperparameters::FromFile`] is asked for).
//! - **A load that fails changes nothing**: all of the above is checked
//!   before anything live changes (params, optimizer state, step count,
//!   hyperparameters, gradient state). After a successful load the
//!   optimizer reports exactly the skipped steps that come after it.

mod reader;
mod validate;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::early_stopping::EarlyStopping;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::grad::{ControlHeader, GradientState};
use crate::optim::Optimizer;
use crate::optim::state::{StateData, StateDtype};
use crate::params::ParamSet;
use crate::precision::ParamUpdate;
use crate::schedule::{LrScheduler, ReduceLrOnPlateau};
use reader::Reader;
use write::{Entry, checksums, master_entries, param_entries, write_atomic};

mod sharded;
pub use sharded::{load_gathered, save_gathered};

/// `format` of a full checkpoint.
pub const FORMAT: &str = "wgpu-optim-checkpoint";
/// `format` of a parameters-only file.
pub const PARAMS_FORMAT: &str = "wgpu-optim-params";
/// The checkpoint version this crate writes. It reads version 2 and the
/// version 1 of earlier builds (see the [module docs](self)).
pub const VERSION: u32 = 2;
/// The checkpoint versions this crate reads.
pub const READ_VERSIONS: [u32; 2] = [1, 2];
/// The version of parameters-only files (unchanged since the first).
pub const PARAMS_VERSION: u32 = 1;
/// The `__metadata__` key of the `wgpu_optim` document.
pub const META_KEY: &str = "wgpu_optim";
/// The `__metadata__` key of the document's checksum: FNV-1a 64 of the
/// document's UTF-8 bytes, as 16 lower-case hex digits (version 2).
pub const META_CHECKSUM_KEY: &str = "wgpu_optim_checksum";
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMeta {
    /// Every numeric hyperparameter of the group by its name (`lr`,
    /// `beta1`, `beta2`, `eps`, `weight_decay`, `l1`, `momentum`, ...), as
    /// [`Algorithm::get`](crate::optim::Algorithm::get) gives it. Files of
    /// version 1 kept `lr`, `weight_decay` and `l1` only.
    pub hyperparameters: BTreeMap<String, f64>,
    /// The group's kernel: its algorithm's name, override constants (the
    /// switches that choose its variant) and states, e.g. `adamw
    /// [MAXIMIZE=0, DECOUPLED=1, AMSGRAD=0] states [exp_avg, exp_avg_sq]`;
    /// a load refuses a group that runs another. Absent in files from
    /// before param groups could run their own algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
}

/// The JSON document under `__metadata__["wgpu_optim"]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// The file's version, as the `version` metadata key.
    pub version: u32,
    /// The algorithm's name (`sgd`, `adamw`, ...), or the names of the
    /// algorithms its param groups run, joined by `+` (`muon+adamw`,
    /// `Optimizer::algorithm_name`).
    pub optimizer: String,
    /// The optimizer's state keys.
    pub state_names: Vec<String>,
    /// Steps submitted (`Optimizer::step_count`).
    pub step: u64,
    /// Each param group, base group first.
    pub groups: Vec<GroupMeta>,
    /// The gradient pipeline's state, when it has one.
    pub gradient_state: Option<GradientState>,
    /// Whether the params were saved in Schedule-Free's eval mode (they
    /// hold `x`, not `y`); absent (false) in files of optimizers without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eval_mode: bool,
    /// `(name, shape)` of every tensor, in layout order.
    pub layout: Vec<(String, Vec<usize>)>,
    /// The param group of every tensor, in layout order (a load refuses an
    /// optimizer whose groups select other tensors); absent in older files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensor_groups: Vec<usize>,
    /// The piece lengths of every tensor with 8-bit states (its 8-bit
    /// blocks restart at each piece, so a load needs the same pieces);
    /// absent when no state is 8-bit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quantized_pieces: BTreeMap<String, Vec<u64>>,
    /// FNV-1a 64 of each tensor's bytes, as 16 hex digits.
    pub checksums: BTreeMap<String, String>,
    /// The caller's state.
    pub training: TrainingState,
}

/// What [`load_with`] does with the hyperparameters a checkpoint saved.
///
/// Either way the learning rates are taken from the file (a schedule sets
/// them every step, so they differ from a freshly built optimizer's on
/// every resume), and so is the momentum (`momentum` of SGD and RMSprop,
/// `beta1` of Adam, AdamW and Adamax) when the checkpoint's scheduler
/// cycles it (`Schedule::cyclic` / `Schedule::one_cycle` with
/// `cycle_momentum`). Applying the restored scheduler after the load sets
/// both again for the next step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hyperparameters {
    /// Every other saved hyperparameter of every group must equal the live
    /// optimizer's; a difference is refused with an [`Error::Checkpoint`]
    /// naming the group, the field and both values. The default: a resumed
    /// run continues the run that was saved.
    #[default]
    MustMatch,
    /// Every saved hyperparameter of every group is set into the live
    /// optimizer (`Optimizer::set_hyperparameter`), after all of them were
    /// validated; values that would change the kernel variant or the states
    /// the optimizer was built with are refused.
    FromFile,
}

/// Options of [`load_with`]; [`load`] uses the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// What to do with the saved hyperparameters.
    pub hyperparameters: Hyperparameters,
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

/// Why a param tensor must have the live params' dtype (for the message).
fn param_dtype_why(params: &ParamSet) -> String {
    format!(
        " (the live ParamSet stores its params as {}; load the file into a ParamSet with the \
         saving run's param dtype)",
        params.param_dtype().as_str()
    )
}

/// The entries of state `s` of tensor `name` in its format: F32 values,
/// BF16 bits, or U8 codes with an F32 `absmax.<tensor>.<key>` (one per block
/// of 256 elements of each piece).
fn state_entries<'a>(
    gpu: &'a Gpu,
    params: &ParamSet,
    opt: &'a Optimizer,
    name: &str,
    s: &'static str,
) -> Result<Vec<Entry<'a>>> {
    let shape = opt.state_shape(s, name)?;
    let key = format!("state.{name}.{s}");
    let owned = name.to_string();
    let raw = move || opt.read_state_raw(gpu, s, &owned);
    let tensor = name.to_string();
    let format_changed = move |d: StateDtype| {
        Error::mismatch(format!(
            "state `{s}` of tensor `{tensor}` read back as {}, not as the optimizer stores it",
            d.as_str()
        ))
    };
    Ok(match opt.state_dtype(name)? {
        StateDtype::F32 => {
            let owned = name.to_string();
            vec![Entry::f32(key, shape, move || {
                opt.read_state(gpu, s, &owned)
            })]
        }
        StateDtype::Bf16 => vec![Entry {
            name: key,
            dtype: safetensors::Dtype::BF16,
            shape,
            read: Box::new(move || match raw()? {
                StateData::Bf16(b) => Ok(bytemuck::cast_slice(&b).to_vec()),
                other => Err(format_changed(other.dtype())),
            }),
        }],
        StateDtype::Blockwise8 => {
            let blocks = absmax_blocks(params, name)?;
            let raw2 = raw.clone();
            let format_changed2 = format_changed.clone();
            vec![
                Entry {
                    name: key,
                    dtype: safetensors::Dtype::U8,
                    shape,
                    read: Box::new(move || match raw()? {
                        StateData::Blockwise8 { codes, .. } => Ok(codes),
                        other => Err(format_changed(other.dtype())),
                    }),
                },
                Entry::f32(
                    format!("absmax.{name}.{s}"),
                    vec![blocks],
                    move || match raw2()? {
                        StateData::Blockwise8 { absmax, .. } => Ok(absmax),
                        other => Err(format_changed2(other.dtype())),
                    },
                ),
            ]
        }
    })
}

/// The piece lengths of each tensor whose states `opt` keeps in 8 bits.
fn quantized_pieces(params: &ParamSet, opt: &Optimizer) -> Result<BTreeMap<String, Vec<u64>>> {
    let mut out = BTreeMap::new();
    if opt.state_names().is_empty() {
        return Ok(out);
    }
    for t in params.layout().tensors() {
        if opt.state_dtype(&t.name)? == StateDtype::Blockwise8 {
            let lens = params.pieces(&t.name)?.iter().map(|p| p.len).collect();
            out.insert(t.name.clone(), lens);
        }
    }
    Ok(out)
}

/// The number of 8-bit blocks of tensor `name`: 256 elements of each piece.
fn absmax_blocks(params: &ParamSet, name: &str) -> Result<usize> {
    Ok(params
        .pieces(name)?
        .iter()
        .map(|p| p.len.div_ceil(crate::precision::QUANT_BLOCK as u64) as usize)
        .sum())
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
/// [`Error::LayoutMismatch`] or [`Error::WrongDevice`] when `opt` was not
/// built for `params` on `gpu` (nothing is written then);
/// [`Error::Checkpoint`] for I/O failures or state that cannot be serialized
/// (a `Schedule::from_fn` closure); the previous file at `path` is intact then.
///
/// A save never reports skipped steps: in [`NonFinite::Error`] mode a
/// checkpoint can be written right after a skipped step, it records the
/// skipped count, and the skip is reported by the next
/// [`Optimizer::step`] or [`Optimizer::stats`] as without the save (the
/// save reads the device's control block itself, leaving the optimizer's
/// statistics reads alone). `opt` is `&mut` for compatibility; a save
/// changes nothing in it.
///
/// Saves that race for one path (threads or processes) each write a
/// temporary file of their own and rename it: the last rename wins, and the
/// file is always one whole checkpoint.
///
/// [`NonFinite::Error`]: crate::grad::NonFinite::Error
pub fn save(
    path: &Path,
    gpu: &Gpu,
    params: &ParamSet,
    opt: &mut Optimizer,
    training: &TrainingState,
) -> Result<()> {
    opt.check_params(gpu, params)?;
    let opt: &Optimizer = opt;
    let owners = vec![(gpu, params, opt); params.layout().len()];
    save_from(path, (gpu, params, opt), &owners, training)
}

/// Where a tensor's states and master are read from: its device, ParamSet
/// and optimizer (every tensor's own optimizer in a sharded run).
pub(super) type Owner<'a> = (&'a Gpu, &'a ParamSet, &'a Optimizer);

/// [`save`] of the params of `lead` and of each tensor's states and master
/// from `owners[k]` (all `lead` unless the state is sharded), the metadata
/// from `lead`'s optimizer: the file an unsharded optimizer would write.
pub(super) fn save_from(
    path: &Path,
    (gpu, params, opt): Owner<'_>,
    owners: &[Owner<'_>],
    training: &TrainingState,
) -> Result<()> {
    let gradient_state = device_gradient_state(gpu, opt)?;
    let mut entries = param_entries(gpu, params, "param.");
    entries.extend(master_entries(params, owners)?);
    let names: Vec<&str> = params
        .layout()
        .tensors()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let state_names =
        opt.state_names_with(&|k| owners[k].2.tensor_state_names(names[k]).unwrap_or_default());
    for (t, &(g, p, o)) in params.layout().tensors().iter().zip(owners) {
        for s in o.tensor_state_names(&t.name)? {
            entries.extend(state_entries(g, p, o, &t.name, s)?);
        }
    }
    let groups = (0..opt.num_groups())
        .map(|g| {
            let c = opt.group_config(g)?;
            let mut hyperparameters = BTreeMap::new();
            for &n in c.hyperparameter_names() {
                match c.get(n) {
                    Some(v) if v.is_finite() => {
                        hyperparameters.insert(n.to_string(), v);
                    }
                    v => {
                        return Err(ck_err(
                            path,
                            format!("param group {g}: `{n}` is {v:?}, which JSON cannot hold"),
                        ));
                    }
                }
            }
            Ok(GroupMeta {
                hyperparameters,
                kernel: Some(crate::optim::spec::kernel_signature(c)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = CheckpointMeta {
        format: FORMAT.into(),
        version: VERSION,
        optimizer: opt.algorithm_name(),
        state_names: state_names.iter().map(|s| s.to_string()).collect(),
        step: opt.step_count(),
        groups,
        gradient_state,
        eval_mode: opt.is_eval_mode(),
        layout: layout_of(params),
        tensor_groups: params
            .layout()
            .tensors()
            .iter()
            .map(|t| opt.group_of(&t.name))
            .collect::<Result<_>>()?,
        quantized_pieces: quantized_pieces(params, opt)?,
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
        (
            META_CHECKSUM_KEY.to_string(),
            format!("{:016x}", fnv1a(json.as_bytes())),
        ),
        (META_KEY.to_string(), json),
    ]);
    write_atomic(path, &entries, info)
}

/// The gradient pipeline's state as of the steps submitted so far, read
/// from the device's control block (waits for the GPU), without the
/// optimizer's statistics reads: a save neither reports nor consumes a
/// skip that `step()` / `stats()` are to report.
fn device_gradient_state(gpu: &Gpu, opt: &Optimizer) -> Result<Option<GradientState>> {
    let Some(control) = opt.control_buffer() else {
        return Ok(None);
    };
    let size = std::mem::size_of::<ControlHeader>();
    let bytes = gpu.read_ranges("checkpoint/gradient_state", &[(control, 0, size as u64)])?;
    let header: ControlHeader = bytes
        .get(..size)
        .map(bytemuck::pod_read_unaligned)
        .ok_or_else(|| Error::Gpu {
            context: "checkpoint/gradient_state".into(),
            message: format!("{} bytes read back, {size} expected", bytes.len()),
        })?;
    Ok(Some(GradientState {
        skipped: header.skipped as u64,
        scale: header.scale,
        growth_tracker: header.growth_tracker,
    }))
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
/// returns the saved [`TrainingState`]: [`load_with`] with the default
/// [`LoadOptions`] (saved hyperparameters other than the learning rates
/// must match the live optimizer's).
///
/// # Errors
/// As [`load_with`].
pub fn load(
    path: &Path,
    gpu: &Gpu,
    params: &mut ParamSet,
    opt: &mut Optimizer,
) -> Result<TrainingState> {
    load_with(path, gpu, params, opt, LoadOptions::default())
}

/// Loads a checkpoint written by [`save`] into `params` and `opt`, and
/// returns the saved [`TrainingState`].
///
/// Everything is checked before anything live changes: that `opt` was
/// built for `params`, the file's structure (see the [module docs](self)),
/// the metadata checksum, the document against itself (a step that can be
/// continued, a gradient state the device can hold, a scheduler for the
/// file's groups) and against the live optimizer (kind, state keys,
/// groups, layout, gradient pipeline, hyperparameters as `options` says),
/// every tensor's name, dtype, shape and byte range, and every tensor's
/// checksum. Then the hyperparameters and learning rates are set, the
/// gradient pipeline's state is restored (a statistics read in flight from
/// before the load is discarded, so the first step after the load reports
/// no stale skip and every later skip is reported), the tensors are
/// uploaded and the step count set.
///
/// ```no_run
/// # use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};
/// # use wgpu_optim::optim::{AdamWConfig, OptimizerSpec};
/// use wgpu_optim::checkpoint::{self, Hyperparameters, LoadOptions};
/// # fn main() -> wgpu_optim::Result<()> {
/// # let gpu = Gpu::new_default()?;
/// # let mut params = ParamSet::new(&gpu, &ParamLayout::new(&[("w", &[4][..])])?)?;
/// # let mut opt = Optimizer::new(&gpu, &OptimizerSpec::adamw(AdamWConfig::default()), &params)?;
/// // Resume with the saved weight decay, betas, eps, ... whatever `opt` was built with.
/// let options = LoadOptions { hyperparameters: Hyperparameters::FromFile };
/// let training = checkpoint::load_with("run.safetensors".as_ref(), &gpu, &mut params, &mut opt, options)?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::LayoutMismatch`] or [`Error::WrongDevice`] when `opt` was not
/// built for `params` on `gpu`; [`Error::Checkpoint`] naming what is wrong
/// or differs — the file, the tensor or field, what was found and what is
/// allowed — and nothing live has changed then. The one exception: a file
/// modified in place while it loads (this crate's saves replace files by
/// rename, which an open load does not see) fails the tensor's second
/// checksum during the upload, and the error says that the live state is
/// partly overwritten. A timeout while discarding a statistics read in
/// flight changes nothing.
pub fn load_with(
    path: &Path,
    gpu: &Gpu,
    params: &mut ParamSet,
    opt: &mut Optimizer,
    options: LoadOptions,
) -> Result<TrainingState> {
    opt.check_params(gpu, params)?;
    let checked = {
        let o: &Optimizer = opt;
        let views = vec![o; params.layout().len()];
        prepare(path, params, o, options, &views, &o.state_names())?
    };
    apply(path, checked, gpu, params, opt)
}

/// What a load checked before anything live changes: the open file, its
/// document and the hyperparameters to set.
pub(super) struct Checked {
    r: Reader,
    meta: CheckpointMeta,
    writes: Vec<validate::Write>,
}

/// Every check of [`load_with`] for loading `path` into `params` and
/// `opt`, changing nothing: the file's tensors are those an optimizer
/// whose tensor `k` is `views[k]`'s would save (each tensor's owner in a
/// sharded run; `opt` itself otherwise), its state names `live_states`.
pub(super) fn prepare(
    path: &Path,
    params: &ParamSet,
    opt: &Optimizer,
    options: LoadOptions,
    views: &[&Optimizer],
    live_states: &[&str],
) -> Result<Checked> {
    let mut r = Reader::open(path)?;
    let version = r.check_format(FORMAT, &READ_VERSIONS)?;
    let json = if version == 1 {
        r.check_metadata_keys(&["format", "version", META_KEY])?;
        r.metadata_str(META_KEY, None)?
    } else {
        r.check_metadata_keys(&["format", "version", META_KEY, META_CHECKSUM_KEY])?;
        r.metadata_str(META_KEY, Some(META_CHECKSUM_KEY))?
    };
    let doc = validate::parse(path, &json, version)?;
    let live_layout = layout_of(params);
    let writes = validate::check(path, &doc, version, &live_layout, opt, live_states, options)?;
    let meta = doc.meta;
    let mut expected = Vec::new();
    for ((name, shape), view) in live_layout.iter().zip(views) {
        use safetensors::Dtype;
        expected.push((
            format!("param.{name}"),
            params.param_dtype().safetensors(),
            shape.clone(),
            param_dtype_why(params),
        ));
        if view.param_update(name)? == ParamUpdate::MasterWeights && view.owns(name)? {
            expected.push((
                format!("master.{name}"),
                Dtype::F32,
                shape.clone(),
                String::new(),
            ));
        }
        let d = view.state_dtype(name)?;
        let why = format!(
            " (the live optimizer stores the states of `{name}` as {}; load it into one built \
             with the file's state dtypes)",
            d.as_str()
        );
        for s in view.tensor_state_names(name)? {
            let key = format!("state.{name}.{s}");
            let shape = &view.state_shape(s, name)?;
            match d {
                StateDtype::F32 => expected.push((key, Dtype::F32, shape.clone(), why.clone())),
                StateDtype::Bf16 => expected.push((key, Dtype::BF16, shape.clone(), why.clone())),
                StateDtype::Blockwise8 => {
                    expected.push((key, Dtype::U8, shape.clone(), why.clone()));
                    let blocks = vec![absmax_blocks(params, name)?];
                    expected.push((
                        format!("absmax.{name}.{s}"),
                        Dtype::F32,
                        blocks,
                        why.clone(),
                    ));
                }
            }
        }
    }
    r.check_typed_tensors(&expected)?;
    let live_pieces = quantized_pieces(params, opt)?;
    if let Some((name, live)) = live_pieces
        .iter()
        .find(|(n, live)| meta.quantized_pieces.get(*n) != Some(*live))
    {
        return Err(ck_err(
            path,
            format!(
                "the 8-bit states of `{name}` were saved in pieces of {:?} elements, but the live \
                 ParamSet cuts it into {live:?} (chunks of {} elements): 8-bit blocks restart at \
                 each piece, so build the ParamSet with the saving run's chunk size \
                 (ParamSet::with_chunk_elems)",
                meta.quantized_pieces.get(name).map_or(&[][..], |v| &v[..]),
                params.placement().chunk_elems()
            ),
        ));
    }
    r.verify_checksums(&meta.checksums)?;
    Ok(Checked { r, meta, writes })
}

/// Changes the live state as `checked` says: hyperparameters, the
/// gradient pipeline's state, the params, and the masters and states of
/// the tensors `opt` keeps (its shard's in a sharded run).
pub(super) fn apply(
    path: &Path,
    checked: Checked,
    gpu: &Gpu,
    params: &mut ParamSet,
    opt: &mut Optimizer,
) -> Result<TrainingState> {
    let Checked {
        mut r,
        meta,
        writes,
    } = checked;
    let live_layout = layout_of(params);
    // Everything checked: now change the live state, the steps that can fail
    // (a bounded wait) first, undone if they do.
    let mut done: Vec<validate::Write> = Vec::new();
    let undo = |opt: &mut Optimizer, done: &[validate::Write]| {
        for &(g, name, old) in done.iter().rev() {
            let _ = opt.set_hyperparameter(g, name, old);
        }
    };
    for &(g, name, value) in &writes {
        let old = opt.group_config(g)?.get(name).unwrap_or(value);
        if let Err(e) = opt.set_hyperparameter(g, name, value) {
            undo(opt, &done);
            return Err(e);
        }
        done.push((g, name, old));
    }
    if let Some(gs) = &meta.gradient_state
        && let Err(e) = opt.set_gradient_state(gpu, gs)
    {
        undo(opt, &done);
        return Err(e);
    }
    let partly = |e: Error| {
        let reason = match e {
            Error::Checkpoint { reason, .. } => reason,
            other => other.to_string(),
        };
        ck_err(
            path,
            format!("{reason}; the live state is partly overwritten: load a good checkpoint again"),
        )
    };
    for (name, _) in &live_layout {
        let v = r
            .read_verified(&format!("param.{name}"), &meta.checksums)
            .map_err(partly)?;
        params
            .write(gpu, name, &params.param_dtype().decode(&v))
            .map_err(partly)?;
        if opt.param_update(name)? == ParamUpdate::MasterWeights && opt.owns(name)? {
            let m = r
                .read_verified(&format!("master.{name}"), &meta.checksums)
                .map_err(partly)?;
            opt.write_master(gpu, name, &bytemuck::pod_collect_to_vec(&m))
                .map_err(partly)?;
        }
        let d = opt.state_dtype(name)?;
        for s in opt.tensor_state_names(name)? {
            let v = r
                .read_verified(&format!("state.{name}.{s}"), &meta.checksums)
                .map_err(partly)?;
            let data = match d {
                StateDtype::F32 => StateData::F32(bytemuck::pod_collect_to_vec(&v)),
                StateDtype::Bf16 => StateData::Bf16(bytemuck::pod_collect_to_vec(&v)),
                StateDtype::Blockwise8 => {
                    let a = r
                        .read_verified(&format!("absmax.{name}.{s}"), &meta.checksums)
                        .map_err(partly)?;
                    StateData::Blockwise8 {
                        codes: v,
                        absmax: bytemuck::pod_collect_to_vec(&a),
                    }
                }
            };
            opt.write_state_raw(gpu, s, name, &data).map_err(partly)?;
        }
    }
    // The masters were written from the file after their params.
    opt.mark_master_synced(params);
    opt.set_step_count(meta.step);
    opt.set_eval_mode(meta.eval_mode).map_err(partly)?;
    Ok(meta.training)
}

/// Writes the parameters alone, under their plain names (for inference).
pub fn export_params(path: &Path, gpu: &Gpu, params: &ParamSet) -> Result<()> {
    let entries = param_entries(gpu, params, "");
    let json =
        serde_json::to_string(&checksums(&entries)?).map_err(|e| ck_err(path, e.to_string()))?;
    let info = HashMap::from([
        ("format".to_string(), PARAMS_FORMAT.to_string()),
        ("version".to_string(), PARAMS_VERSION.to_string()),
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
                dtype: params.param_dtype().safetensors(),
                shape: t.shape.clone(),
                read: Box::new(move || params.read_snapshot_raw(gpu, snap, &name)),
            }
        })
        .collect();
    let json =
        serde_json::to_string(&checksums(&entries)?).map_err(|e| ck_err(path, e.to_string()))?;
    let info = HashMap::from([
        ("format".to_string(), PARAMS_FORMAT.to_string()),
        ("version".to_string(), PARAMS_VERSION.to_string()),
        ("checksums".to_string(), json),
    ]);
    write_atomic(path, &entries, info)
}

/// Reads parameters written by [`export_params`] into `params`, after
/// checking names, shapes, dtypes, length and checksums.
pub fn import_params(path: &Path, gpu: &Gpu, params: &mut ParamSet) -> Result<()> {
    let mut r = Reader::open(path)?;
    r.check_format(PARAMS_FORMAT, &[PARAMS_VERSION])?;
    r.check_metadata_keys(&["format", "version", "checksums"])?;
    let sums: BTreeMap<String, String> = serde_json::from_str(&r.metadata_str("checksums", None)?)
        .map_err(|e| ck_err(path, format!("corrupt checksums: {e}")))?;
    let layout = layout_of(params);
    let dtype = params.param_dtype();
    let expected: Vec<_> = layout
        .iter()
        .map(|(n, shape)| {
            let why = param_dtype_why(params);
            (n.clone(), dtype.safetensors(), shape.clone(), why)
        })
        .collect();
    r.check_typed_tensors(&expected)?;
    r.verify_checksums(&sums)?;
    for (name, _) in &layout {
        let v = r.read_verified(name, &sums)?;
        params.write(gpu, name, &dtype.decode(&v))?;
    }
    Ok(())
}
