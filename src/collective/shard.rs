//! Sharded optimizer state (ZeRO stage 1) between participants: agreeing
//! on who owns each tensor, and gathering the params each owner updated
//! into the others, in process (the defaults of [`Communicator`]) and over
//! MPI (`mpi.rs`). The optimizer side is `optim/runtime/shard.rs`; the
//! partition `pool::shard_tensors`.
//!
//! [`Communicator`]: super::Communicator

use crate::error::{Error, Result};
use crate::layout::ParamLayout;
use crate::params::read_role_bytes;

use super::Participant;
use super::staging::participant_error;

/// Each tensor's owner (a local index) when the local replicas' optimizers
/// hold shards, each tensor in exactly one; `None` when none does.
///
/// # Errors
/// Some replicas sharded and some not, a tensor in two shards or in none.
pub(crate) fn local_owners(
    layout: &ParamLayout,
    shards: &[Option<&[bool]>],
) -> Result<Option<Vec<usize>>> {
    if shards.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut owners = vec![usize::MAX; layout.len()];
    for (r, s) in shards.iter().enumerate() {
        let Some(s) = s else {
            return Err(Error::invalid(
                format!("replicas[{r}]"),
                "an unsharded optimizer",
                "an optimizer of a shard (Optimizer::sharded) on every replica",
                "some replicas hold sharded optimizer state and some do not",
            ));
        };
        for (k, &mine) in s.iter().enumerate() {
            if mine {
                if owners[k] != usize::MAX {
                    return Err(Error::invalid(
                        format!("replicas[{r}]"),
                        format!("tensor {k}"),
                        "each tensor in exactly one replica's shard",
                        format!(
                            "tensor {k} is in the shards of replicas {} and {r}",
                            owners[k]
                        ),
                    ));
                }
                owners[k] = r;
            }
        }
    }
    if let Some(k) = owners.iter().position(|&o| o == usize::MAX) {
        let name = &layout.tensors()[k].name;
        return Err(Error::invalid(
            "replicas",
            format!("tensor `{name}`"),
            "each tensor in exactly one replica's shard",
            format!("no replica's shard holds `{name}`: it would never be updated"),
        ));
    }
    Ok(Some(owners))
}

/// Copies each tensor's params from its owner (a local index) into every
/// other participant: every owner's shard is read first (one read per
/// owner), and only when all reads succeeded are they written into the
/// others' queues (the next submit on each device follows them), so a
/// failed read leaves every non-owner's copies as they were.
///
/// `fault` (a test hook) makes the read of that participant's shard fail.
///
/// # Errors
/// A device error reading an owner's params, naming the participant.
pub(crate) fn gather_local(
    local: &[Participant<'_>],
    owners: &[usize],
    fault: Option<usize>,
) -> Result<()> {
    let mut shards = Vec::with_capacity(local.len());
    for (o, &(gpu, params)) in local.iter().enumerate() {
        let mine: Vec<usize> = (0..owners.len()).filter(|&k| owners[k] == o).collect();
        let read = match (mine.is_empty(), fault == Some(o)) {
            (true, _) => Ok(Vec::new()),
            (false, true) => Err(injected_read_fault()),
            (false, false) => read_role_bytes(gpu, &params.params, params.placement(), &mine),
        };
        let bytes = read.map_err(|e| gather_error(o, e))?;
        shards.push((mine, bytes));
    }
    for (o, (mine, bytes)) in shards.iter().enumerate() {
        for (r, &(gpu, other)) in local.iter().enumerate() {
            if r == o || mine.is_empty() {
                continue;
            }
            gpu.scoped("collective/gather_params", || {
                for (&k, b) in mine.iter().zip(bytes) {
                    other.params.write_raw(gpu, other.placement().pieces(k), b);
                }
            })
            .map_err(|e| gather_error(r, e))?;
        }
    }
    Ok(())
}

/// What an injected gather fault reports (the test hook
/// `Communicator::inject_gather_fault`).
pub(crate) fn injected_read_fault() -> Error {
    Error::DeviceLost {
        reason: "injected fault: reading this shard's params failed".into(),
    }
}

/// `e` as the gather's failure on local device `device`.
fn gather_error(device: usize, e: Error) -> Error {
    match participant_error(device, e) {
        Error::Collective {
            participant,
            reason,
            ..
        } => Error::Collective {
            operation: "gather params".into(),
            participant,
            reason,
        },
        other => other,
    }
}
