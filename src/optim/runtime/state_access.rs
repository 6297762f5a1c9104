//! Optimizer state of a built optimizer, read and written per tensor in
//! the format it is stored in (`optim::state`), and the memory it holds.

use super::Optimizer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::optim::state::{StateData, StateDtype};

// Optimizer state, read and written per tensor.
impl Optimizer {
    /// The state buffers kept, with PyTorch's names (`exp_avg`, ...): of
    /// every part, in the order of their first group, each name once.
    pub fn state_names(&self) -> Vec<&'static str> {
        self.state_names_with(&|k| {
            let part = self.part_of(k);
            match &part.factorize {
                Some(f) if part.states.placement.included[k] => f.layout.names(k),
                _ => Vec::new(),
            }
        })
    }

    /// [`state_names`](Self::state_names) with the per-tensor names of
    /// Adafactor's parts (`row_var`, `col_var`, `variance`) from
    /// `tensor_names(k)` for every tensor of the part: a sharded run's
    /// gathered checkpoint names them from each tensor's owner.
    pub(crate) fn state_names_with(
        &self,
        tensor_names: &dyn Fn(usize) -> Vec<&'static str>,
    ) -> Vec<&'static str> {
        let mut names = Vec::new();
        for (i, p) in self.parts.iter().enumerate() {
            let mut mine: Vec<&'static str> = p.states.roles.iter().map(|r| r.name).collect();
            if p.factorize.is_some() {
                for k in 0..self.layout.len() {
                    if self.group_part[self.assignment[k]] == i {
                        mine.extend(tensor_names(k));
                    }
                }
            }
            for n in mine {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names
    }

    /// The states tensor `name` keeps (its param group's algorithm's; none
    /// for a tensor of another shard, `Optimizer::sharded`).
    pub fn tensor_state_names(&self, name: &str) -> Result<Vec<&'static str>> {
        let k = self.layout.index_of(name)?;
        let part = self.part_of(k);
        if !part.states.placement.included[k] {
            return Ok(Vec::new());
        }
        Ok(match &part.factorize {
            Some(f) => f.layout.names(k),
            None => part.states.roles.iter().map(|r| r.name).collect(),
        })
    }

    /// The shape of state `state` of tensor `name` (torch's: the tensor's,
    /// or for Adafactor's `row_var` / `col_var` the tensor's with the last
    /// or the next-to-last dimension 1).
    ///
    /// # Errors
    /// A tensor not in the layout, or a state it does not keep.
    pub fn state_shape(&self, state: &str, name: &str) -> Result<Vec<usize>> {
        let k = self.layout.index_of(name)?;
        let kept = self.tensor_state_names(name)?;
        if !kept.contains(&state) {
            return Err(Error::invalid(
                "state",
                format!("{state:?}"),
                format!("one of {kept:?}"),
                format!("`{name}` keeps no state named {state:?}"),
            ));
        }
        let shape = &self.layout.tensors()[k].shape;
        Ok(match &self.part_of(k).factorize {
            Some(_) => crate::optim::adafactor::state_shape(shape, state),
            None => shape.clone(),
        })
    }

    /// The part that holds tensor `k`'s states.
    fn part_of(&self, k: usize) -> &super::Part {
        &self.parts[self.group_part[self.assignment[k]]]
    }

    /// Tensor `name`'s index and its part's index, if it keeps `state`.
    fn checked_state(&self, gpu: &Gpu, state: &str, name: &str) -> Result<(usize, usize)> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        let k = self.layout.index_of(name)?;
        let p = self.group_part[self.assignment[k]];
        let kept = self.tensor_state_names(name)?;
        if !kept.contains(&state) {
            return Err(Error::invalid(
                "state",
                format!("{state:?}"),
                format!("one of {kept:?}"),
                format!(
                    "{} keeps no state named {state:?} for `{name}`",
                    self.groups[self.parts[p].lead].name()
                ),
            ));
        }
        Ok((k, p))
    }

    /// The format tensor `name`'s states are stored in (its group's
    /// [`StateDtype`], f32 for a tensor below `min_8bit_size` in an 8-bit
    /// group).
    pub fn state_dtype(&self, name: &str) -> Result<StateDtype> {
        let k = self.layout.index_of(name)?;
        let part = self.part_of(k);
        Ok(match part.factorize {
            Some(_) => StateDtype::F32,
            None => part.states.placement.dtypes[k],
        })
    }

    /// Downloads optimizer state `state` (e.g. `"exp_avg"`) of tensor
    /// `name`, as f32 values (bf16 and 8-bit states decoded).
    pub fn read_state(&self, gpu: &Gpu, state: &str, name: &str) -> Result<Vec<f32>> {
        let (k, p) = self.checked_state(gpu, state, name)?;
        if let Some(f) = &self.parts[p].factorize {
            return f.read(gpu, k, state);
        }
        self.parts[p].states.read(gpu, &self.placement, state, k)
    }

    /// Downloads optimizer state `state` of tensor `name` as it rests on the
    /// device (f32 values, bf16 bits, or 8-bit codes with their absmax).
    pub fn read_state_raw(&self, gpu: &Gpu, state: &str, name: &str) -> Result<StateData> {
        let (k, p) = self.checked_state(gpu, state, name)?;
        if let Some(f) = &self.parts[p].factorize {
            return Ok(StateData::F32(f.read(gpu, k, state)?));
        }
        Ok(self.parts[p]
            .states
            .read_raw(gpu, &self.placement, state, &[k])?
            .remove(0))
    }

    /// Uploads optimizer state `state` of tensor `name` from f32 values,
    /// encoded in the tensor's state format (rounded to bf16, or quantized
    /// per block of 256 elements).
    pub fn write_state(&mut self, gpu: &Gpu, state: &str, name: &str, data: &[f32]) -> Result<()> {
        let (k, p) = self.checked_state(gpu, state, name)?;
        if let Some(f) = &self.parts[p].factorize {
            return f.write(gpu, (k, name), state, data);
        }
        let t = &self.layout.tensors()[k];
        if t.numel != data.len() as u64 {
            return Err(Error::mismatch(format!(
                "state `{state}` of `{name}` has {} elements, but {} were given",
                t.numel,
                data.len()
            )));
        }
        self.parts[p]
            .states
            .write(gpu, &self.placement, state, (k, name), data)
    }

    /// Uploads optimizer state `state` of tensor `name` as stored (the
    /// format and lengths of [`read_state_raw`](Self::read_state_raw)).
    ///
    /// # Errors
    /// A format other than the tensor's, or wrong lengths; nothing is
    /// written then.
    pub fn write_state_raw(
        &mut self,
        gpu: &Gpu,
        state: &str,
        name: &str,
        data: &StateData,
    ) -> Result<()> {
        let (k, p) = self.checked_state(gpu, state, name)?;
        if let Some(f) = &self.parts[p].factorize {
            return match data {
                StateData::F32(v) => f.write(gpu, (k, name), state, v),
                other => Err(Error::invalid(
                    "data",
                    other.dtype().as_str(),
                    "f32 (Adafactor keeps f32 states)",
                    format!("state `{state}` of `{name}` is stored as f32"),
                )),
            };
        }
        self.parts[p]
            .states
            .write_raw(gpu, &self.placement, state, (k, name), data)
    }

    /// Device bytes this optimizer holds per parameter element (the params
    /// and grads of the [`ParamSet`](crate::ParamSet) not counted): its state buffers with
    /// the 8-bit absmax, block tables, uniform and the other small buffers
    /// it owns (the gradient pipeline's and trust passes' excepted) and the
    /// f32 master weights, over
    /// the layout's elements.
    pub fn device_bytes_per_param(&self) -> f64 {
        let n = self.layout.numel().max(1) as f64;
        let mut bytes: u64 = self.uniform.size();
        bytes += self
            .parts
            .iter()
            .map(super::Part::device_bytes)
            .sum::<u64>();
        bytes += self._keep.iter().map(|b| b.size()).sum::<u64>();
        bytes += self.master_bytes();
        bytes as f64 / n
    }
}
