//! The device side of the gradient pipeline: its two kernels, the control
//! block, the partial-norm buffer, the bind groups, and the recording of its
//! passes into the optimizer's compute pass (before the update).

use std::sync::Arc;

use crate::error::Result;
use crate::gpu::{Gpu, Kernel, Slot};
use crate::grad::readback::Readback;
use crate::grad::{
    ClipScope, ControlHeader, GradientConfig, LossScale, NonFinite, NormType, StatsParams,
};

pub(crate) const STATS_SOURCE: &str = concat!(
    include_str!("../gpu/common.wgsl"),
    include_str!("norm.wgsl"),
    include_str!("stats.wgsl")
);
pub(crate) const FINALIZE_SOURCE: &str = concat!(
    include_str!("../gpu/common.wgsl"),
    include_str!("norm.wgsl"),
    include_str!("finalize.wgsl")
);

/// The gradient pipeline of one optimizer, built once.
pub(crate) struct GradPipeline {
    pub(crate) config: GradientConfig,
    stats: Arc<Kernel>,
    finalize: Arc<Kernel>,
    params: wgpu::Buffer,
    pub(crate) control: wgpu::Buffer,
    partials: wgpu::Buffer,
    finalize_bind_group: wgpu::BindGroup,
    pub(crate) readback: Readback,
}

/// The control block's initial bytes: the header, then one `GroupOut` per group.
pub(crate) fn control_bytes(n_groups: usize, header: ControlHeader) -> Vec<u8> {
    let mut v = bytemuck::bytes_of(&header).to_vec();
    v.resize(16 + 16 * n_groups, 0);
    v
}

/// A 1-group control block for optimizers without a gradient pipeline (the
/// kernels bind it, and read nothing from it).
pub(crate) fn dummy_control(gpu: &Gpu) -> wgpu::Buffer {
    gpu.create_buffer("grad/control/unused", 32, wgpu::BufferUsages::STORAGE)
}

fn stats_params(c: &GradientConfig, n_partials: u32, n_groups: usize) -> StatsParams {
    let (max_norm, norm_type) = match c.clip_norm {
        Some((m, t)) => (m as f32, t),
        None => (0.0, NormType::L2),
    };
    let (dynamic, growth, backoff, interval) = match c.loss_scale {
        Some(LossScale::Dynamic(s)) => (
            1,
            s.growth_factor as f32,
            s.backoff_factor as f32,
            s.growth_interval,
        ),
        _ => (0, 1.0, 1.0, 1),
    };
    StatsParams {
        clip_value: c.clip_value.unwrap_or(0.0) as f32,
        max_norm,
        norm_type: norm_type.code(),
        n_partials,
        n_groups: n_groups as u32,
        per_group: (c.clip_scope == ClipScope::PerGroup) as u32,
        dynamic_scale: dynamic,
        growth_factor: growth,
        backoff_factor: backoff,
        growth_interval: interval,
        skip_nonfinite: (c.nonfinite != NonFinite::Propagate) as u32,
        _pad0: 0,
    }
}

impl GradPipeline {
    /// The override constants the optimizer kernel gets from this pipeline
    /// (all false without one).
    pub(crate) fn kernel_constants(c: &GradientConfig) -> Vec<(&'static str, f64)> {
        let on = c.needs_device_pass();
        vec![
            ("STATS", on as u8 as f64),
            (
                "SKIP_NONFINITE",
                (on && c.nonfinite != NonFinite::Propagate) as u8 as f64,
            ),
            ("CLIP_VALUE", c.clip_value.is_some() as u8 as f64),
        ]
    }

    /// Builds the pipeline when `config` needs a device pass. `step` is the
    /// optimizer's per-step uniform (its first 16 bytes are `StepInfo`);
    /// `n_partials` the number of blocks over all chunks.
    /// Call inside the optimizer's error scope.
    pub(crate) fn new(
        gpu: &Gpu,
        config: GradientConfig,
        n_groups: usize,
        n_partials: u32,
        step: &wgpu::Buffer,
    ) -> Result<Option<GradPipeline>> {
        if !config.needs_device_pass() {
            return Ok(None);
        }
        let clip_value = [("CLIP_VALUE", config.clip_value.is_some() as u8 as f64)];
        let stats = gpu.kernel(
            &format!("grad/stats/CLIP_VALUE={}", clip_value[0].1),
            STATS_SOURCE,
            &[
                Slot::Uniform,
                Slot::Uniform,
                Slot::StorageRead,
                Slot::StorageRead,
                Slot::StorageReadWrite,
                Slot::StorageRead,
            ],
            &clip_value,
        )?;
        let finalize = gpu.kernel(
            "grad/finalize",
            FINALIZE_SOURCE,
            &[
                Slot::Uniform,
                Slot::Uniform,
                Slot::StorageRead,
                Slot::StorageReadWrite,
            ],
            &[],
        )?;
        let init_scale = match config.loss_scale {
            Some(LossScale::Dynamic(c)) => c.init_scale as f32,
            _ => 1.0,
        };
        let control = gpu.create_buffer_init(
            "grad/control",
            &control_bytes(
                n_groups,
                ControlHeader {
                    found_inf: 0,
                    skipped: 0,
                    scale: init_scale,
                    growth_tracker: 0,
                },
            ),
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let params = gpu.create_buffer_init(
            "grad/params",
            bytemuck::bytes_of(&stats_params(&config, n_partials, n_groups)),
            wgpu::BufferUsages::UNIFORM,
        );
        let partials = gpu.create_buffer(
            "grad/partials",
            16 * n_partials.max(1) as u64,
            wgpu::BufferUsages::STORAGE,
        );
        let finalize_bind_group = gpu.create_bind_group(
            "grad/finalize",
            &finalize.layout,
            &[
                params.as_entire_binding(),
                step_binding(step),
                partials.as_entire_binding(),
                control.as_entire_binding(),
            ],
        );
        let readback = Readback::new(gpu, control.size());
        Ok(Some(GradPipeline {
            config,
            stats,
            finalize,
            params,
            control,
            partials,
            finalize_bind_group,
            readback,
        }))
    }

    /// The stats pass's bind group over one chunk's block table and grads.
    pub(crate) fn bind_chunk(
        &self,
        gpu: &Gpu,
        chunk: usize,
        step: &wgpu::Buffer,
        blocks: &wgpu::Buffer,
        grads: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        gpu.create_bind_group(
            &format!("grad/stats/chunk{chunk}"),
            &self.stats.layout,
            &[
                self.params.as_entire_binding(),
                step_binding(step),
                blocks.as_entire_binding(),
                grads.as_entire_binding(),
                self.partials.as_entire_binding(),
                self.control.as_entire_binding(),
            ],
        )
    }

    /// Records the stats pass over every chunk, then the finalize pass, into
    /// the optimizer's compute pass.
    pub(crate) fn record<'a>(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        chunks: impl Iterator<Item = (&'a wgpu::BindGroup, (u32, u32))>,
    ) {
        pass.set_pipeline(&self.stats.pipeline);
        for (bg, grid) in chunks {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        pass.set_pipeline(&self.finalize.pipeline);
        pass.set_bind_group(0, &self.finalize_bind_group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
}

/// The `StepInfo` at the start of the optimizer's uniform buffer.
pub(crate) fn step_binding(step: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: step,
        offset: 0,
        size: std::num::NonZeroU64::new(16),
    })
}
