//! The optimizer's pipelines: which kernel a table of one state format
//! gets (`choose_kernel`: the variant, the gradient pipeline's switches, the
//! penalty terms some group needs), and their rebuild when a zero weight
//! decay or l1 becomes nonzero.

use std::sync::Arc;

use super::Optimizer;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Slot};
use crate::grad::device::GradPipeline;
use crate::optim::blocks::Block;
use crate::optim::groups::GroupHp;
use crate::optim::state::StateDtype;
use crate::optim::{Algorithm, KernelDesc, OptimizerSpec, Passes, adafactor, trust};
use crate::precision::ParamStorage;

/// The penalty terms of `prelude.wgsl`'s `penalize` that some param group
/// needs: a weight decay or an l1 that is zero in every group is compiled
/// out (override constants `WEIGHT_DECAY`, `L1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Terms {
    weight_decay: bool,
    l1: bool,
}

impl Terms {
    /// The terms the groups of part `p` need (`group_part`: each group's
    /// part); no allocation, as `step` calls it every step.
    pub(super) fn of_part(groups: &[Algorithm], group_part: &[usize], p: usize) -> Terms {
        let mut t = Terms {
            weight_decay: false,
            l1: false,
        };
        for (g, _) in groups.iter().zip(group_part).filter(|(_, q)| **q == p) {
            let h = GroupHp::of(g);
            t.weight_decay |= h.weight_decay != 0.0;
            t.l1 |= h.l1 != 0.0;
        }
        t
    }
    pub(super) fn union(self, o: Terms) -> Terms {
        Terms {
            weight_decay: self.weight_decay || o.weight_decay,
            l1: self.l1 || o.l1,
        }
    }
    fn constants(self) -> [(&'static str, f64); 2] {
        [
            ("WEIGHT_DECAY", self.weight_decay as u8 as f64),
            ("L1", self.l1 as u8 as f64),
        ]
    }
}

/// What a one-pass kernel may assume of its block table (`prelude.wgsl`'s
/// override constants `TABLE_GROUP`, `STATE_AT_START`), found from the
/// table's blocks when the pipelines are built; the default assumes
/// nothing. The other entry points read groups from their own tables
/// (tensors, matrices) and never get one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(super) struct TableSpec {
    /// The param group of every block, when they share one.
    group: Option<u32>,
    /// Every block's state offset is its start.
    state_at_start: bool,
}

impl TableSpec {
    /// What `blocks` allow a kernel of `passes` to assume.
    pub(super) fn of(blocks: &[Block], passes: Passes) -> TableSpec {
        let Some(first) = blocks.first() else {
            return TableSpec::default();
        };
        if passes != Passes::OnePass {
            return TableSpec::default();
        }
        TableSpec {
            group: blocks
                .iter()
                .all(|b| b.group == first.group)
                .then_some(first.group),
            state_at_start: blocks.iter().all(|b| b.state == b.start),
        }
    }
    fn constants(self) -> impl Iterator<Item = (&'static str, f64)> {
        let group = self.group.map(|g| ("TABLE_GROUP", g as f64));
        let at_start = self.state_at_start.then_some(("STATE_AT_START", 1.0));
        group.into_iter().chain(at_start)
    }
}

/// The pipeline of the base group's variant plus the gradient pipeline's
/// switches, the penalty terms (and, for a trust-ratio optimizer, the pass
/// `phase` selects, and for a one-pass kernel what it may assume of its
/// table), cached per device.
pub(super) fn choose_kernel(
    gpu: &Gpu,
    desc: &KernelDesc,
    (spec, terms, storage): (&OptimizerSpec, Terms, ParamStorage),
    passes: Passes,
    (phase, table): (Option<(&'static str, f64)>, TableSpec),
    dtype: StateDtype,
) -> Result<Arc<Kernel>> {
    let mut constants = desc.constants.clone();
    constants.extend(GradPipeline::kernel_constants(&spec.gradients));
    constants.extend(terms.constants());
    constants.extend(phase);
    constants.extend(table.constants());
    let slots = desc.bindings(passes, dtype, storage);
    let storage_count = slots.iter().filter(|s| !matches!(s, Slot::Uniform)).count() as u32;
    let available = gpu.limits().max_storage_buffers_per_shader_stage;
    if storage_count > available {
        return Err(Error::LimitExceeded {
            limit: "max_storage_buffers_per_shader_stage".into(),
            needed: storage_count as u64,
            available: available as u64,
            hint: format!(
                "; {} with {} states{} needs them",
                desc.name,
                dtype.as_str(),
                if storage.master {
                    " and f32 master weights"
                } else {
                    ""
                }
            ),
        });
    }
    let mut key = format!("optim/{}/{}/{}", desc.name, dtype.as_str(), storage.key());
    for (k, v) in &constants {
        key.push_str(&format!("/{k}={v}"));
    }
    gpu.kernel(
        &key,
        &desc.assemble(passes, dtype, storage),
        &slots,
        &constants,
    )
}

impl Optimizer {
    /// Rebuilds every pipeline of part `p` with the penalty terms `terms`
    /// (a group's weight decay or l1 became nonzero after the build): the
    /// same bindings, so only the pipelines change. Schedule-Free's swap
    /// pipelines stay: a swap returns before the penalties.
    pub(super) fn rebuild_kernels(&mut self, gpu: &Gpu, p: usize, terms: Terms) -> Result<()> {
        let part = &self.parts[p];
        let desc = self.groups[part.lead].algo().kernel();
        let spec = &self.spec;
        let storage = self.storage;
        let passes = self.groups[part.lead].algo().passes();
        let passes_of = passes;
        let mut kernels = Vec::with_capacity(part.dispatches.len());
        for d in &part.dispatches {
            kernels.push(choose_kernel(
                gpu,
                &desc,
                (spec, terms, storage),
                passes,
                (None, d.table),
                d.dtype,
            )?);
        }
        let passes = match &part.trust {
            Some(_) => {
                let d = part.dispatches.first().map_or(StateDtype::F32, |d| d.dtype);
                let k = |phase| {
                    let phase = (Some(phase), TableSpec::default());
                    choose_kernel(gpu, &desc, (spec, terms, storage), passes, phase, d)
                };
                Some((k(trust::MEASURE)?, k(trust::REDUCE)?))
            }
            None => None,
        };
        let k = |phase| {
            choose_kernel(
                gpu,
                &desc,
                (spec, terms, storage),
                passes_of,
                (Some(phase), TableSpec::default()),
                StateDtype::F32,
            )
        };
        let factors = match &part.factorize {
            Some(_) => Some((k(adafactor::ROWS_COLS)?, k(adafactor::FINISH)?)),
            None => None,
        };
        // Everything built: now switch.
        let part = &mut self.parts[p];
        if let (Some(f), Some(kernels)) = (part.factorize.as_mut(), factors) {
            f.set_kernels(kernels);
        }
        for (d, k) in part.dispatches.iter_mut().zip(kernels) {
            d.kernel = k;
        }
        if let (Some((t, _, _)), Some((measure, reduce))) = (part.trust.as_mut(), passes) {
            t.measure = measure;
            t.reduce = reduce;
        }
        part.terms = terms;
        Ok(())
    }
}
