//! One part of an optimizer: the param groups that run one kernel (one
//! algorithm with its structural switches). An optimizer has one part
//! unless a param group runs another algorithm (`ParamGroup::algorithm`,
//! Muon with AdamW for the embeddings and norms); each part owns its
//! states, block tables, pipelines and bind groups, while the uniform
//! buffer, the gradient pipeline and the block numbering are the
//! optimizer's, so one compute pass and one submit still cover every part.

use std::sync::Arc;

use super::kernels::TableSpec;
use super::{ChunkDispatch, Terms, choose_kernel};
use crate::error::Result;
use crate::gpu::{Gpu, Kernel, grid};
use crate::grad::device::{GradPipeline, step_binding};
use crate::layout::{ParamLayout, Placement};
use crate::optim::blocks::{Block, Table};
use crate::optim::state::{StateDtype, StatePlacement, States};
use crate::optim::trust::{Segment, TrustPasses};
use crate::optim::{Algorithm, OptimizerSpec, Passes, adafactor, muon};
use crate::params::ParamSet;
use crate::precision::ParamStorage;

/// The groups of one kernel, and everything the step needs to run it.
pub(super) struct Part {
    /// The group whose config chooses the kernel (the part's first group).
    pub(super) lead: usize,
    /// Where this part's rows start in the uniform buffer (row `g` of
    /// group `g` at `rows_offset + g * row_len`).
    pub(super) rows_offset: u64,
    /// Bytes of one of its rows.
    pub(super) row_len: u64,
    pub(super) states: States,
    pub(super) dispatches: Vec<ChunkDispatch>,
    /// A trust-ratio optimizer's measure and reduce passes, with the
    /// reduce pass's bind group and grid.
    pub(super) trust: Option<(TrustPasses, wgpu::BindGroup, (u32, u32))>,
    /// Muon's Newton-Schulz iteration, between the reduce and apply passes.
    pub(super) muon: Option<muon::Orthogonalize>,
    /// Adafactor's factored states and their row / column passes, before
    /// the measure pass.
    pub(super) factorize: Option<adafactor::Factorize>,
    /// Schedule-Free's eval and train swap pipelines.
    pub(super) swap: Option<(Arc<Kernel>, Arc<Kernel>)>,
    /// The penalty terms its kernels were built with.
    pub(super) terms: Terms,
    pub(super) keep: Vec<wgpu::Buffer>,
}

/// What a part is built from, decided on the host before any allocation:
/// its tensors, their state placement and their block tables (numbered
/// after the parts before it).
pub(super) struct Plan {
    pub(super) lead: usize,
    /// The part's tensors, as the one block numbering counts them.
    pub(super) numbered: Vec<bool>,
    /// Those it updates and keeps states for (all of them, unless the
    /// optimizer owns a shard: `shard.rs`).
    pub(super) included: Vec<bool>,
    pub(super) states: StatePlacement,
    pub(super) tables: Vec<Table>,
    /// The index of its first block in the optimizer's one numbering.
    pub(super) first: u32,
}

/// What every part shares: the optimizer's device objects and its layout.
pub(super) struct Shared<'a> {
    pub(super) gpu: &'a Gpu,
    pub(super) spec: &'a OptimizerSpec,
    pub(super) params: &'a ParamSet,
    pub(super) layout: &'a ParamLayout,
    pub(super) placement: &'a Placement,
    pub(super) groups: &'a [Algorithm],
    pub(super) assignment: &'a [usize],
    /// Each group's state format (before `min_8bit_size`).
    pub(super) state_dtypes: &'a [StateDtype],
    pub(super) uniform: &'a wgpu::Buffer,
    pub(super) control: &'a wgpu::Buffer,
    pub(super) grad: Option<&'a GradPipeline>,
    /// Blocks over all parts (the trust passes' buffer is indexed by the
    /// one numbering).
    pub(super) n_blocks: u32,
    /// How the params and grads are stored, and whether a master exists.
    pub(super) storage: ParamStorage,
    /// The f32 master weights (param placement), when some group keeps them.
    pub(super) master: Option<&'a crate::params::Role>,
}

impl Part {
    /// The groups of `plan`'s part, as `terms` needs, their rows at
    /// `rows_offset`. Call inside the optimizer's error scope.
    pub(super) fn build(
        s: &Shared<'_>,
        plan: Plan,
        rows_offset: u64,
        terms: Terms,
    ) -> Result<Part> {
        let Shared { gpu, spec, .. } = *s;
        let lead_cfg = &s.groups[plan.lead];
        let algo = lead_cfg.algo();
        let desc = algo.kernel();
        let passes = algo.passes();
        let name = desc.name;
        let row_len = algo.row(1).len() as u64;
        let max_dim = gpu.limits().max_compute_workgroups_per_dimension;
        // One pipeline per state format and table specialization, built
        // when the first table needing it comes (never one no table uses).
        let mut kernels = std::collections::BTreeMap::new();
        let f32_kernel = |phase| {
            choose_kernel(
                gpu,
                &desc,
                (spec, terms, s.storage),
                Passes::OnePass,
                (Some(phase), TableSpec::default()),
                StateDtype::F32,
            )
        };
        let swap = match algo.swap_weights() {
            Some(_) => Some((
                f32_kernel(("SWAP_TO_EVAL", 1.0))?,
                f32_kernel(("SWAP_TO_TRAIN", 1.0))?,
            )),
            None => None,
        };
        // The per-tensor table of the passes that reduce per tensor.
        let mut segs =
            crate::optim::trust::segments(s.placement, s.assignment, &plan.numbered, plan.first);
        for (seg, &inc) in segs.iter_mut().zip(&plan.included) {
            if !inc {
                // A tensor of another shard: nothing to reduce.
                (seg.first, seg.count) = (0, 0);
            }
        }
        let matrices = match lead_cfg {
            Algorithm::Muon(c) => {
                let max = gpu.limits().max_storage_buffer_binding_size / 4;
                Some(muon::matrices(c, s.layout, &segs, &plan.included, max)?)
            }
            _ => None,
        };
        let factored = match lead_cfg {
            Algorithm::Adafactor(_) => {
                let max = gpu.limits().max_storage_buffer_binding_size / 4;
                let l = adafactor::Layout::new(s.layout, s.placement, &segs, &plan.included, max)?;
                Some(l)
            }
            _ => None,
        };
        let table: (&[u8], u32) = match (&matrices, &factored) {
            (Some((m, _, _)), _) => (bytemuck::cast_slice(m), m.len() as u32),
            (_, Some(f)) => (bytemuck::cast_slice(&f.table), f.table.len() as u32),
            _ => (
                bytemuck::cast_slice::<Segment, u8>(&segs),
                segs.len() as u32,
            ),
        };
        let states = allocate_states(s, name, &plan)?;
        // The dynamic maps, for the 8-bit tables only.
        let qmaps = (!states.absmax.is_empty()).then(|| {
            gpu.create_buffer_init(
                &format!("optim/{name}/qmaps"),
                bytemuck::cast_slice(&crate::precision::map_bits()),
                wgpu::BufferUsages::UNIFORM,
            )
        });
        let per_tensor = if passes.per_tensor() {
            Some(TrustPasses::new(gpu, name, table, s.n_blocks, |phase| {
                // One state format for all the part's groups (spec.resolve).
                let d = s.state_dtypes[plan.lead];
                let phase = (Some(phase), TableSpec::default());
                choose_kernel(gpu, &desc, (spec, terms, s.storage), passes, phase, d)
            })?)
        } else {
            None
        };
        let ortho = match (lead_cfg, &matrices, &per_tensor) {
            (Algorithm::Muon(c), Some((m, x, g)), Some(p)) => Some(muon::Orthogonalize::new(
                gpu,
                c,
                (m, *x, *g),
                &p.tensors,
                &p.buffer,
            )?),
            _ => None,
        };
        let mut factorize = match factored {
            Some(l) => Some(adafactor::Factorize::new(gpu, l, |phase| {
                choose_kernel(
                    gpu,
                    &desc,
                    (spec, terms, s.storage),
                    passes,
                    (Some(phase), TableSpec::default()),
                    StateDtype::F32,
                )
            })?),
            None => None,
        };
        let mut keep: Vec<wgpu::Buffer> = desc
            .slots
            .iter()
            .map(|slot| {
                let label = format!("optim/{name}/unused-{slot}");
                gpu.create_buffer(&label, 16, wgpu::BufferUsages::STORAGE)
            })
            .collect();
        let rows = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: s.uniform,
            offset: rows_offset,
            size: std::num::NonZeroU64::new(row_len * super::MAX_GROUPS as u64),
        });
        let mut dispatches = Vec::new();
        let mut reduce = None;
        let mut binds = Vec::new();
        for (c, dtype, blocks) in plan.tables {
            let table_spec = TableSpec::of(&blocks, passes);
            let kernel = match kernels.entry((dtype, table_spec)) {
                std::collections::btree_map::Entry::Occupied(k) => Arc::clone(k.get()),
                std::collections::btree_map::Entry::Vacant(v) => {
                    Arc::clone(v.insert(choose_kernel(
                        gpu,
                        &desc,
                        (spec, terms, s.storage),
                        passes,
                        (None, table_spec),
                        dtype,
                    )?))
                }
            };
            let table = gpu.create_buffer_init(
                &format!("optim/{name}/blocks/chunk{c}/{}", dtype.as_str()),
                bytemuck::cast_slice::<Block, u8>(&blocks),
                wgpu::BufferUsages::STORAGE,
            );
            let mut res = vec![
                step_binding(s.uniform),
                rows.clone(),
                table.as_entire_binding(),
                s.control.as_entire_binding(),
                s.params.params.buffers[c].as_entire_binding(),
                s.params.grads.buffers[c].as_entire_binding(),
            ];
            if let Some(p) = &per_tensor {
                res.extend(p.bindings());
            }
            for (i, slot) in desc.slots.iter().enumerate() {
                match states.role(slot) {
                    Some(role) => res.push(role.buffers[&(c, dtype)].as_entire_binding()),
                    None => res.push(keep[i].as_entire_binding()),
                }
            }
            // Adafactor's factors and scratch.
            if let Some(f) = &factorize {
                res.push(f.factors.as_entire_binding());
                res.push(f.scratch.as_entire_binding());
            }
            let mut measure_res = res.clone();
            // Muon's scratch matrix: X_0 for the measure pass, the
            // iteration's result for the apply pass.
            if let Some(o) = &ortho {
                res.push(o.x_last().as_entire_binding());
                measure_res.push(o.x_first().as_entire_binding());
            }
            // Then the 8-bit absmax and maps, and the master (the order of
            // `KernelDesc::bindings`).
            let mut tail = Vec::new();
            if dtype == StateDtype::Blockwise8 {
                tail.push(states.absmax_binding(c));
                let maps = qmaps.as_ref().expect("8-bit tables have their maps");
                tail.push(maps.as_entire_binding());
            }
            if let Some(m) = s.master {
                tail.push(m.buffers[c].as_entire_binding());
            }
            res.extend(tail.iter().cloned());
            measure_res.extend(tail);
            // Adafactor's row / column items: once per chunk (the
            // per-tensor dispatch has several tables in a chunk).
            if let Some(f) = &factorize
                && !binds.iter().any(|(b, _)| *b == c)
            {
                binds.push((c, f.bind_chunk(gpu, c, &res, binds.is_empty())));
            }
            let bind_group =
                gpu.create_bind_group(&format!("optim/{name}/chunk{c}"), &kernel.layout, &res);
            let swap_bind_groups = swap.as_ref().map(|(e, t)| {
                let label = format!("optim/{name}/swap/chunk{c}");
                (
                    gpu.create_bind_group(&label, &e.layout, &res),
                    gpu.create_bind_group(&label, &t.layout, &res),
                )
            });
            let measure_bind_group = per_tensor.as_ref().map(|p| {
                let label = format!("optim/{name}/measure/chunk{c}");
                gpu.create_bind_group(&label, &p.measure.layout, &measure_res)
            });
            if let Some(p) = &per_tensor
                && reduce.is_none()
            {
                let label = format!("optim/{name}/reduce");
                reduce = Some(gpu.create_bind_group(&label, &p.reduce.layout, &res));
            }
            let stats_bind_group = s
                .grad
                .map(|g| g.bind_chunk(gpu, c, s.uniform, &table, &s.params.grads.buffers[c]));
            dispatches.push(ChunkDispatch {
                kernel,
                dtype,
                table: table_spec,
                bind_group,
                swap_bind_groups,
                measure_bind_group,
                stats_bind_group,
                grid: grid(blocks.len() as u32, max_dim),
            });
            keep.push(table);
        }
        keep.extend(qmaps);
        if let Some(f) = factorize.as_mut() {
            f.set_binds(binds.into_iter().map(|(_, b)| b).collect());
        }
        let trust = per_tensor.zip(reduce).map(|(p, bg)| {
            let grid = p.reduce_grid(max_dim);
            (p, bg, grid)
        });
        Ok(Part {
            lead: plan.lead,
            rows_offset,
            row_len,
            states,
            dispatches,
            trust,
            muon: ortho,
            factorize,
            swap,
            terms,
            keep,
        })
    }

    /// Records the part's passes after the gradient pipeline's: a
    /// trust-ratio optimizer's measure and reduce, Muon's Newton-Schulz
    /// products, then the update of every table.
    pub(super) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(f) = &self.factorize {
            f.record(pass);
        }
        if let Some((passes, reduce, reduce_grid)) = &self.trust {
            pass.set_pipeline(&passes.measure.pipeline);
            for d in &self.dispatches {
                if let Some(bg) = &d.measure_bind_group {
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
                }
            }
            pass.set_pipeline(&passes.reduce.pipeline);
            pass.set_bind_group(0, reduce, &[]);
            pass.dispatch_workgroups(reduce_grid.0, reduce_grid.1, 1);
        }
        if let Some(o) = &self.muon {
            o.record(pass);
        }
        for d in &self.dispatches {
            pass.set_pipeline(&d.kernel.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
        }
    }

    /// Optimizer dispatches one step records for this part: one per table
    /// (two for a trust-ratio optimizer, and one reduce), plus Muon's
    /// products.
    pub(super) fn dispatches_per_step(&self) -> usize {
        let per_table = if self.trust.is_some() { 2 } else { 1 };
        per_table * self.dispatches.len()
            + self.trust.is_some() as usize
            + self.muon.as_ref().map_or(0, |o| o.dispatches())
            + self.factorize.as_ref().map_or(0, |f| f.dispatches())
    }

    /// Device bytes of its state buffers, absmax and own small buffers.
    pub(super) fn device_bytes(&self) -> u64 {
        let mut bytes = 0;
        for r in &self.states.roles {
            bytes += r.buffers.values().map(|b| b.size()).sum::<u64>();
        }
        bytes += self.states.absmax.values().map(|b| b.size()).sum::<u64>();
        bytes += self.factorize.as_ref().map_or(0, |f| f.device_bytes());
        bytes + self.keep.iter().map(|b| b.size()).sum::<u64>()
    }
}

/// The part's state buffers, each tensor starting at its group's initial
/// value.
fn allocate_states(s: &Shared<'_>, name: &str, plan: &Plan) -> Result<States> {
    let base = s.groups[plan.lead].algo().kernel();
    let inits: Vec<Vec<f32>> = s
        .groups
        .iter()
        .map(|g| {
            g.algo()
                .kernel()
                .active
                .iter()
                .map(|a| a.1 as f32)
                .collect()
        })
        .collect();
    let assignment = s.assignment;
    States::new(
        s.gpu,
        &format!("optim/{name}"),
        s.placement,
        plan.states.clone(),
        &base.active_maps(),
        |st, k| inits[assignment[k]][st],
    )
}
