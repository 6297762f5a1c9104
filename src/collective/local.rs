//! [`LocalCommunicator`]: all-reduce between the devices of one process.

use crate::error::{Error, Result};
use crate::params::read_role;

use super::staging::{Engine, Fault, PartTimes, participant_error};
use super::{
    CollectiveConfig, Communicator, Participant, describe_layout_difference, sum_in_order,
};

/// All-reduce between devices of this process, through host memory, with
/// the pipelined bucket engine described in [the module docs](super).
///
/// The sum is computed once on the host in the fixed device order
/// `((g0 + g1) + g2) + ...` in f32 (split over
/// [`CollectiveConfig::reduce_threads`] threads by element range, which does
/// not change any result), and the same bytes go to every device: replicas
/// stay bitwise equal. With one device the all-reduce does nothing.
#[derive(Debug)]
pub struct LocalCommunicator {
    config: CollectiveConfig,
    engine: Option<Engine>,
    fault: Option<Fault>,
    gather_fault: Option<usize>,
    world: usize,
}

impl LocalCommunicator {
    /// A communicator with `config`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bucket under 256 bytes.
    pub fn new(config: CollectiveConfig) -> Result<LocalCommunicator> {
        config.validate()?;
        Ok(LocalCommunicator {
            config,
            engine: None,
            fault: None,
            gather_fault: None,
            world: 1,
        })
    }

    /// The options.
    pub fn config(&self) -> &CollectiveConfig {
        &self.config
    }

    /// Number of buckets of the current plan (0 before the first all-reduce).
    pub fn num_buckets(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.buckets.len())
    }

    fn engine(&mut self, local: &[Participant<'_>]) -> Result<&mut Engine> {
        let rebuild = !self.engine.as_ref().is_some_and(|e| e.fits(local));
        if rebuild {
            self.engine = Some(Engine::new(self.config, local)?);
        }
        Ok(self.engine.as_mut().expect("built above"))
    }
}

impl Default for LocalCommunicator {
    fn default() -> Self {
        LocalCommunicator {
            config: CollectiveConfig::default(),
            engine: None,
            fault: None,
            gather_fault: None,
            world: 1,
        }
    }
}

impl Communicator for LocalCommunicator {
    fn world_size(&self) -> usize {
        // The devices passed to the last check_layouts or all-reduce.
        self.world
    }

    fn first_index(&self) -> usize {
        0
    }

    fn check_layouts(&mut self, local: &[Participant<'_>]) -> Result<()> {
        check_local_layouts(local)?;
        self.world = local.len();
        Ok(())
    }

    fn all_reduce_sum(&mut self, local: &[Participant<'_>]) -> Result<()> {
        check_local_layouts(local)?;
        self.world = local.len().max(1);
        if local.len() <= 1 {
            self.fault = None;
            return Ok(());
        }
        let threads = self.config.threads();
        let fault = self.fault.take();
        let engine = self.engine(local)?;
        engine.fault = fault;
        engine.run(local, |_b, inputs, out| {
            let inputs = inputs?;
            sum_in_order(out, inputs, threads);
            Ok(())
        })
    }

    fn broadcast_params(&mut self, local: &[Participant<'_>]) -> Result<()> {
        check_local_layouts(local)?;
        let Some(&(g0, p0)) = local.first() else {
            return Ok(());
        };
        let all: Vec<usize> = (0..p0.layout().len()).collect();
        let values = read_role(g0, &p0.params, p0.placement(), &all)
            .map_err(|e| participant_error(0, e))
            .map_err(|e| rename(e, "broadcast"))?;
        for (d, &(gpu, params)) in local.iter().enumerate().skip(1) {
            gpu.scoped("collective/broadcast", || {
                for (k, v) in values.iter().enumerate() {
                    params.params.write(gpu, params.placement().pieces(k), v);
                }
                params.note_param_write();
            })
            .and_then(|_| gpu.synchronize())
            .map_err(|e| rename(participant_error(d, e), "broadcast"))?;
        }
        Ok(())
    }

    fn agree(&mut self, outcome: Result<()>) -> Result<()> {
        outcome
    }

    fn time_parts(&mut self, local: &[Participant<'_>]) -> Result<Option<PartTimes>> {
        check_local_layouts(local)?;
        if local.len() <= 1 {
            return Ok(None);
        }
        let threads = self.config.threads();
        let engine = self.engine(local)?;
        engine.time_parts(local, threads).map(Some)
    }

    /// During the next all-reduce, the map of `bucket` on device `device`
    /// fails: its pending map is aborted, which wgpu reports exactly as a
    /// failed map.
    fn inject_fault(&mut self, device: usize, bucket: usize) {
        self.fault = Some(Fault { device, bucket });
    }

    fn gather_params(&mut self, local: &[Participant<'_>], owners: &[usize]) -> Result<()> {
        super::shard::gather_local(local, owners, self.gather_fault.take())
    }

    /// During the next gather, reading device `device`'s shard fails (as
    /// a lost device's read would), before anything is written.
    fn inject_gather_fault(&mut self, device: usize) {
        self.gather_fault = Some(device);
    }
}

fn rename(e: Error, op: &str) -> Error {
    match e {
        Error::Collective {
            participant,
            reason,
            ..
        } => Error::Collective {
            operation: op.into(),
            participant,
            reason,
        },
        other => other,
    }
}

/// Refuses replicas whose layouts differ, or two replicas on one device.
pub(crate) fn check_local_layouts(local: &[Participant<'_>]) -> Result<()> {
    let Some(&(_, p0)) = local.first() else {
        return Ok(());
    };
    for (d, &(gpu, p)) in local.iter().enumerate() {
        gpu.check_same(&format!("the ParamSet of replica {d}"), p.gpu_id())?;
        if d > 0
            && let Some(diff) = describe_layout_difference(p0, p)
        {
            return Err(Error::mismatch(format!(
                "replica {d} has a different layout than replica 0: {diff}; \
                 every replica must be built from the same ParamLayout"
            )));
        }
    }
    Ok(())
}
