//! f32 master weights of the param groups whose bf16 / f16 params take the
//! step through them (`ParamUpdate::MasterWeights`, Apex's
//! `master_weights`): the kernels load and update the master and write the
//! params rounded from it (`precision::params_wgsl`); here they are filled,
//! read and written from the host.

use super::Optimizer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::params::{ParamSet, read_role};
use crate::precision::{ParamDtype, ParamUpdate};

impl Optimizer {
    /// How the params of the [`ParamSet`] it was built for are stored.
    pub fn param_dtype(&self) -> ParamDtype {
        self.storage.param
    }
    /// How the gradients of the [`ParamSet`] it was built for are stored.
    pub fn grad_dtype(&self) -> ParamDtype {
        self.storage.grad
    }
    /// How tensor `name`'s params take the step's result (its param
    /// group's [`ParamUpdate`]).
    pub fn param_update(&self, name: &str) -> Result<ParamUpdate> {
        let k = self.layout.index_of(name)?;
        Ok(self.param_updates[self.assignment[k]])
    }

    /// The tensors that keep f32 master weights (those of the shard, when
    /// the optimizer holds one), in layout order.
    fn master_tensors(&self) -> Vec<usize> {
        (0..self.layout.len())
            .filter(|&k| self.param_updates[self.assignment[k]] == ParamUpdate::MasterWeights)
            .filter(|&k| self.owns_tensor(k))
            .collect()
    }

    /// Whether this optimizer updates tensor `k` (every tensor unless it
    /// holds a shard).
    pub(crate) fn owns_tensor(&self, k: usize) -> bool {
        self.owned.as_ref().is_none_or(|o| o[k])
    }

    /// Whether this optimizer updates tensor `name`: every tensor, unless
    /// it was built for a shard ([`Optimizer::sharded`]).
    pub fn owns(&self, name: &str) -> Result<bool> {
        Ok(self.owns_tensor(self.layout.index_of(name)?))
    }

    /// The shard this optimizer was built for (one flag per tensor), if any.
    pub fn shard(&self) -> Option<&[bool]> {
        self.owned.as_deref()
    }

    /// Copies the params of every tensor with master weights into its
    /// master (exact: bf16 and f16 widen to f32). [`Optimizer::new`] does
    /// it, and [`step`](Self::step) does it again when the params were
    /// written from the host since ([`ParamSet::write`], a snapshot
    /// restored, a broadcast): the master continues from what was written.
    /// Params written by a user's own kernel are not seen: call this then.
    /// Waits for the GPU.
    pub fn reload_master(&mut self, gpu: &Gpu, params: &ParamSet) -> Result<()> {
        let Some(master) = &self.master else {
            return Ok(());
        };
        self.check_params(gpu, params)?;
        let which = self.master_tensors();
        let values = read_role(gpu, &params.params, &self.placement, &which)?;
        for (&k, v) in which.iter().zip(&values) {
            master.write(gpu, self.placement.pieces(k), v);
        }
        self.mark_master_synced(params);
        Ok(())
    }

    /// Reloads the masters if the params were written from the host since
    /// they were last in step (`step` calls it).
    pub(super) fn sync_master(&mut self, gpu: &Gpu, params: &ParamSet) -> Result<()> {
        if self.master.is_some() && params.param_writes() != self.master_synced {
            self.reload_master(gpu, params)?;
        }
        Ok(())
    }

    /// Records that the masters agree with the params as written so far (a
    /// checkpoint load wrote both).
    pub(crate) fn mark_master_synced(&mut self, params: &ParamSet) {
        self.master_synced = params.param_writes();
    }

    /// Tensor `k` of `name`, if it keeps master weights.
    fn checked_master(&self, gpu: &Gpu, name: &str) -> Result<usize> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        let k = self.layout.index_of(name)?;
        if self.master.is_none() || !self.master_tensors().contains(&k) {
            return Err(Error::invalid(
                "param_update",
                self.param_updates[self.assignment[k]].as_str(),
                "master (ParamUpdate::MasterWeights) for this tensor's param group",
                format!("`{name}` keeps no f32 master weights"),
            ));
        }
        Ok(k)
    }

    /// Downloads the f32 master weights of tensor `name`.
    ///
    /// # Errors
    /// A tensor whose group does not keep master weights.
    pub fn read_master(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>> {
        let k = self.checked_master(gpu, name)?;
        let master = self.master.as_ref().expect("checked");
        read_role(gpu, master, &self.placement, &[k]).map(|mut v| v.remove(0))
    }

    /// Uploads the f32 master weights of tensor `name` (the params are
    /// written from them by the next step; a checkpoint load writes both).
    ///
    /// # Errors
    /// A tensor whose group does not keep master weights, or a wrong
    /// length; nothing is written then.
    pub fn write_master(&mut self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        let k = self.checked_master(gpu, name)?;
        let numel = self.layout.tensors()[k].numel;
        if numel != data.len() as u64 {
            return Err(Error::mismatch(format!(
                "the master weights of `{name}` have {numel} elements, but {} were given",
                data.len()
            )));
        }
        let master = self.master.as_ref().expect("checked");
        master.write(gpu, self.placement.pieces(k), data);
        Ok(())
    }

    /// Device bytes of the master weights.
    pub(super) fn master_bytes(&self) -> u64 {
        self.master
            .as_ref()
            .map_or(0, |m| m.buffers.iter().map(|b| b.size()).sum())
    }
}
