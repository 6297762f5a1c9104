//! Checkpoints of a run whose optimizer state is sharded over the devices
//! of one process (ZeRO-1, `DevicePool::replicate_sharded`): one gathered
//! file holding, byte for byte, the tensors and metadata the unsharded run
//! would save (each tensor's
//! states and master read from the replica that owns it), and its load
//! into every replica, each keeping its shard's states. Either side may be
//! unsharded: a sharded run resumes from an unsharded run's file and the
//! other way round. (Each replica may also save and load its own shard
//! with [`save`](super::save) / [`load`](super::load).)

use std::path::Path;

use super::{LoadOptions, Owner, TrainingState, apply, prepare, save_from};
use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::pool::DataParallel;

/// Each tensor's owning replica (all 0 when the state is not sharded), after
/// checking that the replicas are this process's whole world.
fn owners(dp: &DataParallel, what: &str) -> Result<Vec<usize>> {
    if dp.world_size() != dp.len() {
        return Err(Error::invalid(
            "replicas",
            format!("{} of {}", dp.len(), dp.world_size()),
            "every replica in this process",
            format!(
                "a {what} needs every shard in this process; over MPI each rank saves and loads \
                 its own shard (checkpoint::save / load)"
            ),
        ));
    }
    for (i, r) in dp.replicas().iter().enumerate() {
        r.opt
            .check_params(&r.gpu, &r.params)
            .map_err(|e| Error::mismatch(format!("replica {i}: {e}")))?;
    }
    let n = dp.replica(0).params.layout().len();
    Ok(dp
        .shard_owners()
        .map_or_else(|| vec![0; n], <[usize]>::to_vec))
}

/// Saves the run of `dp` as one file: replica 0's params and metadata,
/// each tensor's states and master from its owner. An unsharded optimizer
/// loads it with [`load`](super::load); a sharded run with
/// [`load_gathered`].
///
/// # Errors
/// A `DataParallel` across processes, a replica whose optimizer and
/// ParamSet do not belong together, or what [`save`](super::save) fails on.
pub fn save_gathered(path: &Path, dp: &DataParallel, training: &TrainingState) -> Result<()> {
    let owners = owners(dp, "gathered checkpoint")?;
    let reps = dp.replicas();
    let own: Vec<Owner<'_>> = owners
        .iter()
        .map(|&r| (&reps[r].gpu, &reps[r].params, &reps[r].opt))
        .collect();
    save_from(
        path,
        (&reps[0].gpu, &reps[0].params, &reps[0].opt),
        &own,
        training,
    )
}

/// Loads one file (a [`save_gathered`] file, or one an unsharded run saved)
/// into every replica of `dp`: the params into all, each tensor's states
/// and master into the replica that keeps them; a `DataParallel` that
/// refused to step after a failed one ([`DataParallel::step`]) steps again. Every replica's checks
/// run before any replica changes ([`load_with`](super::load_with)'s, the
/// tensors expected being those of the whole world).
///
/// # Errors
/// As [`save_gathered`] and [`load_with`](super::load_with), naming the
/// replica; nothing has changed then, except after a failure while the
/// replicas are written (a file modified while it loads), which the error
/// says.
pub fn load_gathered(
    path: &Path,
    dp: &mut DataParallel,
    options: LoadOptions,
) -> Result<TrainingState> {
    let owners = owners(dp, "gathered checkpoint")?;
    let checked = {
        let reps = dp.replicas();
        let views: Vec<&Optimizer> = owners.iter().map(|&r| &reps[r].opt).collect();
        let names: Vec<String> = reps[0]
            .params
            .layout()
            .tensors()
            .iter()
            .map(|t| t.name.clone())
            .collect();
        let world = reps[0]
            .opt
            .state_names_with(&|k| views[k].tensor_state_names(&names[k]).unwrap_or_default());
        reps.iter()
            .enumerate()
            .map(|(i, r)| {
                prepare(path, &r.params, &r.opt, options, &views, &world)
                    .map_err(|e| replica_error(i, e))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let mut training = TrainingState::default();
    for (i, (r, c)) in dp.replicas_mut().iter_mut().zip(checked).enumerate() {
        training =
            apply(path, c, &r.gpu, &mut r.params, &mut r.opt).map_err(|e| replica_error(i, e))?;
    }
    dp.mark_restored();
    Ok(training)
}

/// `e` with the replica it happened on.
fn replica_error(i: usize, e: Error) -> Error {
    match e {
        Error::Checkpoint { path, reason } => Error::Checkpoint {
            path,
            reason: format!("replica {i}: {reason}"),
        },
        other => other,
    }
}
