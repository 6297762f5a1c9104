//! Param groups of a built optimizer: every hyperparameter of each group,
//! read and set by name, learning rates and momentum, with no rebuild and
//! no readback.

use super::Optimizer;
use crate::error::{Error, Result};
use crate::optim::Algorithm;
use crate::optim::check_lr;
use crate::optim::groups::GroupHp;

// Param groups: every hyperparameter of each group, read and set by name.
impl Optimizer {
    /// Number of param groups, the base group included.
    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }
    /// The param group of tensor `name`.
    pub fn group_of(&self, name: &str) -> Result<usize> {
        Ok(self.assignment[self.layout.index_of(name)?])
    }
    /// The full config of `group` (every hyperparameter).
    pub fn group_config(&self, group: usize) -> Result<&Algorithm> {
        self.groups.get(group).ok_or_else(|| self.no_group(group))
    }
    /// The `lr`, `weight_decay` and `l1` of `group`.
    pub fn group_hp(&self, group: usize) -> Result<GroupHp> {
        self.group_config(group).map(GroupHp::of)
    }
    fn no_group(&self, group: usize) -> Error {
        Error::invalid(
            "group",
            group,
            format!("0..{}", self.groups.len()),
            format!("no param group {group}"),
        )
    }
    /// Sets hyperparameter `name` of `group` for the next steps (no rebuild,
    /// no readback). The group's config is validated as a whole; nothing
    /// changes on error.
    ///
    /// # Errors
    /// An unknown group or name, an invalid value, or a value that would
    /// change the kernel's variant or states (structural switches are per
    /// optimizer).
    pub fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()> {
        let current = self.group_config(group)?.clone();
        let mut cfg = current.clone();
        if !cfg.algo_mut().set(name, value) {
            return Err(Error::invalid(
                name,
                value,
                format!("one of {:?}", current.hyperparameter_names()),
                format!("{} has no hyperparameter `{name}`", current.name()),
            ));
        }
        cfg.validate()?;
        let (a, b) = (current.algo().kernel(), cfg.algo().kernel());
        if a.constants != b.constants || a.active.len() != b.active.len() {
            return Err(Error::invalid(
                name,
                value,
                "a value that keeps the optimizer's variant and states",
                format!(
                    "{name} = {value} would change the kernel {} was built with",
                    current.name()
                ),
            ));
        }
        self.groups[group] = cfg;
        Ok(())
    }
    /// Sets the learning rate of `group` for the next steps (a schedule calls
    /// this each step; it costs no rebuild and no readback).
    pub fn set_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        check_lr("lr", lr)?;
        self.set_hyperparameter(group, "lr", lr)
    }
    /// Sets the learning rate of every group.
    pub fn set_lr_all(&mut self, lr: f64) -> Result<()> {
        self.set_lrs(&vec![lr; self.groups.len()])
    }
    /// The learning rate of every group, base group first.
    pub fn lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| GroupHp::of(g).lr).collect()
    }

    /// Sets every group's learning rate; all are checked before any is set.
    ///
    /// ```no_run
    /// # use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};
    /// # use wgpu_optim::optim::{OptimizerSpec, SgdConfig};
    /// # use wgpu_optim::schedule::{PlateauConfig, ReduceLrOnPlateau};
    /// # fn main() -> wgpu_optim::Result<()> {
    /// # let gpu = Gpu::new_default()?;
    /// # let params = ParamSet::new(&gpu, &ParamLayout::new(&[("w", &[4][..])])?)?;
    /// # let mut opt = Optimizer::new(&gpu, &OptimizerSpec::sgd(SgdConfig::default()), &params)?;
    /// let mut plateau = ReduceLrOnPlateau::new(PlateauConfig::default())?;
    /// let mut lrs = opt.lrs();
    /// plateau.step(0.42, &mut lrs)?;   // the epoch's validation loss
    /// opt.set_lrs(&lrs)?;
    /// # Ok(()) }
    /// ```
    pub fn set_lrs(&mut self, lrs: &[f64]) -> Result<()> {
        if lrs.len() != self.groups.len() {
            return Err(Error::mismatch(format!(
                "{} learning rates for {} param groups",
                lrs.len(),
                self.groups.len()
            )));
        }
        for &lr in lrs {
            check_lr("lr", lr)?;
        }
        for (g, &lr) in self.groups.iter_mut().zip(lrs) {
            g.algo_mut().set("lr", lr);
        }
        Ok(())
    }

    /// The base group's momentum as cycling schedules see it (`momentum` of
    /// SGD and RMSprop, `beta1` of Adam, AdamW and Adamax), if it keeps one.
    pub fn momentum(&self) -> Option<f64> {
        let g = &self.groups[0];
        g.algo().momentum_name().and_then(|n| g.get(n))
    }

    /// Sets the momentum of every group for the next steps: `momentum` of
    /// SGD and RMSprop, `beta1` of Adam and AdamW (what PyTorch's cycling
    /// schedulers set).
    ///
    /// # Errors
    /// An optimizer without momentum (Adagrad, Adadelta, or SGD / RMSprop
    /// built with momentum 0, which keep no momentum buffer), a param group
    /// whose own algorithm has none (`groups[i].momentum`), or a value out
    /// of range or one that would remove the buffer; nothing changes then.
    pub fn set_momentum(&mut self, momentum: f64) -> Result<()> {
        if self.groups[0].algo().momentum_name().is_none() {
            return Err(Error::invalid(
                "momentum",
                momentum,
                "an optimizer built with momentum (SGD, RMSprop) or beta1 (Adam, AdamW)",
                format!(
                    "{} was built without a momentum buffer",
                    self.groups[0].name()
                ),
            ));
        }
        let mut next = self.groups.clone();
        for (i, g) in next.iter_mut().enumerate() {
            // A group that runs another algorithm sets its own momentum
            // (Muon's `momentum`, AdamW's `beta1`).
            let Some(field) = g.algo().momentum_name() else {
                return Err(Error::invalid(
                    format!("groups[{i}].momentum"),
                    momentum,
                    "param groups whose algorithms keep a momentum",
                    format!("param group {i} runs {}, which has no momentum", g.name()),
                ));
            };
            g.algo_mut().set(field, momentum);
            g.validate()?;
            if g.algo().momentum_name().is_none() {
                return Err(Error::invalid(
                    "momentum",
                    momentum,
                    "> 0 (the kernel was built with a momentum buffer)",
                    "momentum cannot be switched off after construction",
                ));
            }
        }
        self.groups = next;
        Ok(())
    }
}
