//! The benchmark suite run on one adapter (every optimizer on the mix and
//! on single tensors beside the copy roofline, clipping, param and state dtypes, the
//! driver's copy), and how each case is timed. The all-reduce section is
//! `allreduce.rs`, the `--big` rows `big.rs`.

use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;
use wgpu_optim::bench::{
    BufferCopy, CopyKernel, MUON_MAX_SINGLE, PassTimer, bytes_moved_per_param, bytes_per_param,
    device_bytes_per_param, filled_params, for_layout, gpt2_like_layout, muon_flops,
    precision_cases, single_layout_for, single_tensor_layout,
};
use wgpu_optim::optim::{
    AdamConfig, AdamWConfig, Algorithm, Dispatch, OptimizerSpec, PassTimestamps,
};
use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet, ParamSetOptions, ParamUpdate};

use crate::cli::{Plan, TimingArg, fmt_size};

/// The optimizers of the suite, with the names used in reports.
pub fn optimizers() -> Vec<(&'static str, OptimizerSpec)> {
    wgpu_optim::bench::standard_optimizers()
}

/// Name of the clipped case in reports.
pub const CLIP_NAME: &str = "adam+clip_global_norm";

/// Name of the rows of AdamW with other param / grad and state formats
/// (`bench::precision_cases`) in reports.
pub const DTYPES_NAME: &str = "adamw+dtypes";

/// Name of the `copy_buffer_to_buffer` rows in reports.
pub const BUFFER_COPY_NAME: &str = "copy_buffer_to_buffer";

/// How many progress ticks [`run_adapter`] makes for `plan`.
pub fn jobs_per_adapter(plan: &Plan) -> u64 {
    let big = if plan.big { optimizers().len() + 1 } else { 0 };
    (optimizers().len() * (1 + plan.sizes.len()) + 2 + plan.sizes.len() + big) as u64
}

/// How the cases of an adapter were timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingMethod {
    /// GPU timestamps at the beginning and end of each compute pass.
    GpuTimestamps,
    /// Host wall clock from before the submit until the GPU has finished.
    WallClock,
}

impl TimingMethod {
    /// A sentence for the table's header.
    pub fn describe(self) -> &'static str {
        match self {
            TimingMethod::GpuTimestamps => {
                "GPU timestamps around each compute pass (the `wall ms` column: \
                 submit until the GPU finished)"
            }
            TimingMethod::WallClock => "wall clock, from before the submit until the GPU finished",
        }
    }
}

/// The copy roofline beside a step: the same-device WGSL copy moving the
/// same bytes, timed the same way.
#[derive(Debug, Clone, Serialize)]
pub struct CopyRef {
    /// Bytes the copy reads and writes per run.
    pub bytes: u64,
    /// Median time (the adapter's timing method), seconds.
    pub time_s: f64,
    /// `bytes / time_s / 1e9`.
    pub gb_per_s: f64,
}

/// One benchmark case's results.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// `sgd_momentum`, `adam`, ..., `adam+clip_global_norm`, or
    /// `copy_buffer_to_buffer` (the driver's copy of 8 bytes per param).
    pub optimizer: String,
    /// `gpt2_like` (50 tensors) or `single` (one tensor).
    pub layout: String,
    /// Number of tensors.
    pub tensors: usize,
    /// Number of parameters.
    pub params: u64,
    /// `fused` (one dispatch per chunk), `per_tensor`, or `copy`.
    pub dispatch: String,
    /// Compute dispatches per step (the gradient pipeline's not included).
    pub dispatches_per_step: usize,
    /// How params and grads are stored: `f32`, `bf16` or `f16`.
    pub param_dtype: String,
    /// How the optimizer states are stored: `f32`, `bf16` or `8bit`
    /// (tensors under 4096 elements stay f32 with `8bit`).
    pub state_dtype: String,
    /// Whether an f32 master copy of the params is kept.
    pub master: bool,
    /// How 16-bit params take the step: `nearest`, `master` or
    /// `stochastic` (`ParamUpdate`).
    pub param_update: String,
    /// Bytes one step reads and writes per parameter (moved per step).
    pub bytes_per_param: f64,
    /// Device bytes held per parameter: params, grads, optimizer states
    /// (8-bit absmax included) and the optimizer's small buffers.
    pub device_bytes_per_param: f64,
    /// Timed repetitions.
    pub reps: usize,
    /// Median step time by the adapter's timing method, seconds.
    pub time_s: f64,
    /// Median wall time, submit until the GPU finished, seconds.
    pub wall_s: f64,
    /// Median GPU time of the step's compute pass, seconds, when timed by
    /// timestamps.
    pub gpu_s: Option<f64>,
    /// `params / time_s`.
    pub params_per_s: f64,
    /// `params * bytes_per_param / time_s / 1e9`.
    pub gb_per_s: f64,
    /// The copy roofline measured beside this case.
    pub copy: CopyRef,
    /// `time_s / copy.time_s`: 1 means the step runs as fast as copying its
    /// bytes; 2 means twice as long.
    pub ratio_to_copy: f64,
    /// What `ratio_to_baseline` compares against: `fused` for per-tensor
    /// rows, `adam` for the clipped row.
    pub baseline: Option<String>,
    /// `time_s / baseline's time_s`, measured interleaved in the same run.
    pub ratio_to_baseline: Option<f64>,
    /// Muon: its Newton-Schulz products' floating-point operations per
    /// step over `time_s` (the whole step's time, its elementwise passes
    /// and AdamW's tensors included), GFLOP/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflop_per_s: Option<f64>,
}

/// Something that submits one timed compute pass.
pub(crate) trait Case {
    fn submit(&mut self, gpu: &Gpu, ts: Option<&PassTimestamps>) -> wgpu_optim::Result<()>;
}

struct StepCase {
    params: ParamSet,
    opt: Optimizer,
}

impl StepCase {
    fn new(
        gpu: &Gpu,
        spec: &OptimizerSpec,
        layout: &ParamLayout,
        mode: Dispatch,
    ) -> wgpu_optim::Result<StepCase> {
        StepCase::with_options(gpu, spec, layout, mode, ParamSetOptions::default())
    }

    fn with_options(
        gpu: &Gpu,
        spec: &OptimizerSpec,
        layout: &ParamLayout,
        mode: Dispatch,
        options: ParamSetOptions,
    ) -> wgpu_optim::Result<StepCase> {
        let params = filled_params(gpu, layout, options)?;
        let opt = Optimizer::with_dispatch(gpu, spec, &params, mode)?;
        Ok(StepCase { params, opt })
    }
}

impl Case for StepCase {
    fn submit(&mut self, gpu: &Gpu, ts: Option<&PassTimestamps>) -> wgpu_optim::Result<()> {
        self.opt.set_pass_timestamps(ts.cloned());
        self.opt.step(gpu, &mut self.params)
    }
}

impl Case for CopyKernel {
    fn submit(&mut self, gpu: &Gpu, ts: Option<&PassTimestamps>) -> wgpu_optim::Result<()> {
        self.submit_timed(gpu, ts)
    }
}

impl Case for BufferCopy {
    fn submit(&mut self, gpu: &Gpu, ts: Option<&PassTimestamps>) -> wgpu_optim::Result<()> {
        self.submit_timed(gpu, ts)
    }
}

/// Medians of one case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timed {
    wall: f64,
    gpu: Option<f64>,
}

impl Timed {
    fn primary(&self) -> f64 {
        self.gpu.unwrap_or(self.wall)
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The timer of one adapter.
pub struct Clock {
    timer: Option<PassTimer>,
}

impl Clock {
    /// The method this clock uses.
    pub fn method(&self) -> TimingMethod {
        if self.timer.is_some() {
            TimingMethod::GpuTimestamps
        } else {
            TimingMethod::WallClock
        }
    }

    /// One run of `case`: submit, wait for the GPU, then read the pass's
    /// timestamps (outside the wall-clock region).
    fn sample(&self, gpu: &Gpu, case: &mut dyn Case) -> wgpu_optim::Result<(f64, Option<f64>)> {
        let t0 = Instant::now();
        case.submit(gpu, self.timer.as_ref().map(|t| t.writes()))?;
        gpu.synchronize()?;
        let wall = t0.elapsed().as_secs_f64();
        let gpu_t = match &self.timer {
            Some(t) => Some(t.read(gpu)?.as_secs_f64()),
            None => None,
        };
        Ok((wall, gpu_t))
    }

    /// Runs the cases round-robin (one warm-up each, then `reps` rounds) so
    /// that every case sees the same machine load, and returns their medians.
    pub(crate) fn interleaved(
        &self,
        gpu: &Gpu,
        reps: usize,
        cases: &mut [&mut dyn Case],
    ) -> wgpu_optim::Result<Vec<Timed>> {
        for c in cases.iter_mut() {
            self.sample(gpu, *c)?;
        }
        let mut walls = vec![Vec::with_capacity(reps); cases.len()];
        let mut gpus = vec![Vec::with_capacity(reps); cases.len()];
        for _ in 0..reps {
            for (i, c) in cases.iter_mut().enumerate() {
                let (w, g) = self.sample(gpu, *c)?;
                walls[i].push(w);
                if let Some(g) = g {
                    gpus[i].push(g);
                }
            }
        }
        Ok(walls
            .into_iter()
            .zip(gpus)
            .map(|(w, g)| Timed {
                wall: median(w),
                gpu: (!g.is_empty()).then(|| median(g)),
            })
            .collect())
    }
}

/// Opens `adapter` for benchmarking: with `TIMESTAMP_QUERY` when it is
/// offered and wanted, and checks that timestamps work with one probe copy.
/// Returns the device, its clock and a note on the choice.
pub fn open(
    adapter: &wgpu::Adapter,
    timing: TimingArg,
) -> wgpu_optim::Result<(Gpu, Clock, String)> {
    let ts = wgpu::Features::TIMESTAMP_QUERY;
    if timing == TimingArg::Wall {
        let gpu = Gpu::from_adapter(adapter)?;
        return Ok((
            gpu,
            Clock { timer: None },
            "wall clock requested (--timing wall)".into(),
        ));
    }
    if !adapter.features().contains(ts) {
        let gpu = Gpu::from_adapter(adapter)?;
        return Ok((
            gpu,
            Clock { timer: None },
            "the adapter does not offer TIMESTAMP_QUERY".into(),
        ));
    }
    let gpu = Gpu::from_adapter_with_features(adapter, ts)?;
    let probe = || -> wgpu_optim::Result<PassTimer> {
        let timer = PassTimer::new(&gpu)?;
        let copy = CopyKernel::new(&gpu, 1 << 16)?;
        copy.submit_timed(&gpu, Some(timer.writes()))?;
        gpu.synchronize()?;
        timer.read(&gpu)?;
        Ok(timer)
    };
    match probe() {
        Ok(timer) => {
            let period = gpu.queue().get_timestamp_period();
            Ok((
                gpu,
                Clock { timer: Some(timer) },
                format!("TIMESTAMP_QUERY, period {period} ns"),
            ))
        }
        Err(e) => {
            // A device whose timestamps misbehave: fall back, and say why.
            let gpu = Gpu::from_adapter(adapter)?;
            Ok((
                gpu,
                Clock { timer: None },
                format!("timestamps offered but unusable ({e})"),
            ))
        }
    }
}

/// f32 params and grads (every row but the dtype rows).
pub(crate) const F32_PARAMS: (&str, ParamUpdate) = ("f32", ParamUpdate::RoundNearest);

/// What one row of the report is made of.
pub(crate) struct Row<'a> {
    pub(crate) name: &'a str,
    pub(crate) layout_name: &'a str,
    pub(crate) layout: &'a ParamLayout,
    pub(crate) dispatches: usize,
    pub(crate) dispatch: &'a str,
    pub(crate) state_dtype: &'a str,
    /// The params' and grads' dtype and update (`f32`, `nearest` but for
    /// the dtype rows).
    pub(crate) params: (&'a str, ParamUpdate),
    pub(crate) bpp: f64,
    pub(crate) held: f64,
    pub(crate) step: Timed,
    pub(crate) copy: (&'a CopyKernel, Timed),
    pub(crate) baseline: Option<(&'a str, Timed)>,
    /// Muon's Newton-Schulz flops per step (`bench::muon_flops`).
    pub(crate) flops: f64,
    /// The step's bytes over the copy's (1 unless the copy was capped: the
    /// big rows compare bandwidths).
    pub(crate) copy_scale: f64,
}

impl Row<'_> {
    pub(crate) fn measurement(&self, reps: usize) -> Measurement {
        let params = self.layout.numel();
        let t = self.step.primary();
        let ct = self.copy.1.primary();
        Measurement {
            optimizer: self.name.to_string(),
            layout: self.layout_name.to_string(),
            tensors: self.layout.len(),
            params,
            dispatch: self.dispatch.to_string(),
            dispatches_per_step: self.dispatches,
            param_dtype: self.params.0.to_string(),
            state_dtype: self.state_dtype.to_string(),
            master: self.params.1 == ParamUpdate::MasterWeights,
            param_update: self.params.1.as_str().to_string(),
            bytes_per_param: self.bpp,
            device_bytes_per_param: self.held,
            reps,
            time_s: t,
            wall_s: self.step.wall,
            gpu_s: self.step.gpu,
            params_per_s: params as f64 / t,
            gb_per_s: params as f64 * self.bpp / t / 1e9,
            copy: CopyRef {
                bytes: self.copy.0.bytes,
                time_s: ct,
                gb_per_s: self.copy.0.bytes as f64 / ct / 1e9,
            },
            ratio_to_copy: t / (ct * self.copy_scale),
            baseline: self.baseline.map(|b| b.0.to_string()),
            ratio_to_baseline: self.baseline.map(|b| t / b.1.primary()),
            gflop_per_s: (self.flops > 0.0).then(|| self.flops / t / 1e9),
        }
    }
}

/// Runs the whole suite on one opened device (last, the driver's
/// `copy_buffer_to_buffer` against the copy kernel): for every optimizer the
/// GPT-2-like mix fused and per tensor, then single tensors of every size,
/// each beside the copy roofline; then Adam with global-norm clipping.
pub fn run_adapter(
    gpu: &Gpu,
    clock: &Clock,
    plan: &Plan,
    progress: &ProgressBar,
    tag: &str,
) -> wgpu_optim::Result<Vec<Measurement>> {
    let mut out = Vec::new();
    let mix = gpt2_like_layout();
    let n_mix = mix.numel();
    for (name, spec) in optimizers() {
        let muon = matches!(spec.algorithm(), Algorithm::Muon(_));
        // Muon's rows stand beside AdamW's on the same tensors: its time
        // per step against AdamW's, interleaved.
        let adamw = OptimizerSpec::adamw(AdamWConfig::default());

        // A quick run times Muon (seconds a step on a CPU adapter) once,
        // fused only, and on the smallest matrix only.
        let short = muon && plan.quick;
        let reps = if short { 1 } else { plan.reps };

        progress.set_message(format!("{tag}: {name} gpt2_like"));
        let spec_mix = for_layout(&spec, &mix);
        let mut per = StepCase::new(gpu, &spec_mix, &mix, Dispatch::PerTensor)?;
        let (mut fused, bpp, flops, mut copy, mut base) =
            with_roofline(gpu, &spec_mix, &mix, muon.then_some(&adamw))?;
        let mut cases: Vec<&mut dyn Case> = vec![&mut fused, &mut copy];
        if let Some(b) = base.as_mut() {
            cases.push(b);
        }
        if !short {
            cases.push(&mut per);
        }
        let t = clock.interleaved(gpu, reps, &mut cases)?;
        // [fused, copy, adamw (Muon), per-tensor (unless short)]
        let (t_copy, t_base) = (t[1], muon.then(|| t[2]));
        let t_per = (!short).then(|| t[t.len() - 1]);
        let row = |case: &StepCase, dispatch, step, baseline| Row {
            name,
            layout_name: "gpt2_like",
            layout: &mix,
            dispatches: case.opt.dispatches_per_step(),
            dispatch,
            state_dtype: "f32",
            params: F32_PARAMS,
            bpp,
            held: device_bytes_per_param(&case.opt),
            step,
            copy: (&copy, t_copy),
            baseline,
            flops,
            copy_scale: 1.0,
        };
        let fused_baseline = t_base.map(|b| ("adamw", b));
        out.push(row(&fused, "fused", t[0], fused_baseline).measurement(reps));
        if let Some(tp) = t_per {
            out.push(row(&per, "per_tensor", tp, Some(("fused", t[0]))).measurement(reps));
        }
        drop((fused, per, copy, base));
        progress.inc(1);

        for &n in &plan.sizes {
            if muon && (n > MUON_MAX_SINGLE || (short && n > plan.sizes[0])) {
                progress.inc(1);
                continue;
            }
            progress.set_message(format!("{tag}: {name} {}", fmt_size(n)));
            let layout = single_layout_for(&spec, n as usize);
            let (mut one, bpp, flops, mut copy, mut base) =
                with_roofline(gpu, &spec, &layout, muon.then_some(&adamw))?;
            let mut cases: Vec<&mut dyn Case> = vec![&mut one, &mut copy];
            if let Some(b) = base.as_mut() {
                cases.push(b);
            }
            let t = clock.interleaved(gpu, reps, &mut cases)?;
            let row = Row {
                name,
                layout_name: "single",
                layout: &layout,
                dispatches: one.opt.dispatches_per_step(),
                dispatch: "fused",
                state_dtype: "f32",
                params: F32_PARAMS,
                bpp,
                held: device_bytes_per_param(&one.opt),
                step: t[0],
                copy: (&copy, t[1]),
                baseline: t.get(2).map(|&b| ("adamw", b)),
                flops,
                copy_scale: 1.0,
            };
            out.push(row.measurement(reps));
            progress.inc(1);
        }
    }

    // Global-norm clipping: a statistics pass reads the gradients once more
    // (4 bytes per parameter) before the fused update.
    progress.set_message(format!("{tag}: {CLIP_NAME} gpt2_like"));
    let adam = OptimizerSpec::adam(AdamConfig::default());
    let bpp = bytes_per_param(adam.algorithm()) + 4;
    let mut plain = StepCase::new(gpu, &adam, &mix, Dispatch::Fused)?;
    let mut clipped = StepCase::new(
        gpu,
        &adam.clone().clip_by_global_norm(1.0),
        &mix,
        Dispatch::Fused,
    )?;
    let mut copy = CopyKernel::new(gpu, bpp * n_mix)?;
    let t = clock.interleaved(gpu, plan.reps, &mut [&mut plain, &mut clipped, &mut copy])?;
    let row = Row {
        name: CLIP_NAME,
        layout_name: "gpt2_like",
        layout: &mix,
        dispatches: clipped.opt.dispatches_per_step(),
        dispatch: "fused",
        state_dtype: "f32",
        params: F32_PARAMS,
        bpp: bpp as f64,
        held: device_bytes_per_param(&clipped.opt),
        step: t[1],
        copy: (&copy, t[2]),
        baseline: Some(("adam", t[0])),
        flops: 0.0,
        copy_scale: 1.0,
    };
    out.push(row.measurement(plan.reps));
    progress.inc(1);

    // AdamW with each combination of param / grad and state formats on the
    // mix, each interleaved with the all-f32 AdamW and a copy of its own
    // bytes.
    progress.set_message(format!("{tag}: {DTYPES_NAME} gpt2_like"));
    let mut cases = Vec::new();
    for c in precision_cases() {
        let case = StepCase::with_options(gpu, &c.spec, &mix, Dispatch::Fused, c.options)?;
        let bpp = bytes_moved_per_param(&case.opt, &mix);
        let copy = CopyKernel::new(gpu, (bpp * n_mix as f64).ceil() as u64)?;
        cases.push((c, case, bpp, copy));
    }
    let (first, rest) = cases.split_at_mut(1);
    let f32_case = &mut first[0];
    for (c, case, bpp, copy) in rest.iter_mut() {
        let t = clock.interleaved(gpu, plan.reps, &mut [&mut f32_case.1, case, copy])?;
        let row = Row {
            name: DTYPES_NAME,
            layout_name: "gpt2_like",
            layout: &mix,
            dispatches: case.opt.dispatches_per_step(),
            dispatch: "fused",
            state_dtype: c.state.as_str(),
            params: (c.options.param_dtype.as_str(), c.update),
            bpp: *bpp,
            held: device_bytes_per_param(&case.opt),
            step: t[1],
            copy: (copy, t[2]),
            baseline: Some(("adamw", t[0])),
            flops: 0.0,
            copy_scale: 1.0,
        };
        out.push(row.measurement(plan.reps));
    }
    drop(cases);
    progress.inc(1);

    // The driver's copy_buffer_to_buffer of one f32 tensor of each size (8
    // bytes per element) against the WGSL copy kernel of the same bytes.
    for &n in &plan.sizes {
        progress.set_message(format!("{tag}: {BUFFER_COPY_NAME} {}", fmt_size(n)));
        let layout = single_tensor_layout(n as usize);
        let mut kernel = CopyKernel::new(gpu, 8 * n)?;
        let mut driver = BufferCopy::new(gpu, 8 * n)?;
        let t = clock.interleaved(gpu, plan.reps, &mut [&mut driver, &mut kernel])?;
        let row = Row {
            name: BUFFER_COPY_NAME,
            layout_name: "single",
            layout: &layout,
            dispatches: 0,
            dispatch: "copy",
            state_dtype: "f32",
            params: F32_PARAMS,
            bpp: 8.0,
            held: 8.0,
            step: t[0],
            copy: (&kernel, t[1]),
            baseline: None,
            flops: 0.0,
            copy_scale: 1.0,
        };
        out.push(row.measurement(plan.reps));
        progress.inc(1);
    }
    if plan.big {
        out.extend(crate::big::big_rows(gpu, clock, plan, progress, tag)?);
    }
    Ok(out)
}

/// The fused step of `spec` over `layout`, its bytes per param, Muon's
/// flops, the copy kernel of its bytes and, with `baseline`, that spec's
/// step on the same tensors (Muon beside AdamW).
type WithRoofline = (StepCase, f64, f64, CopyKernel, Option<StepCase>);

fn with_roofline(
    gpu: &Gpu,
    spec: &OptimizerSpec,
    layout: &ParamLayout,
    baseline: Option<&OptimizerSpec>,
) -> wgpu_optim::Result<WithRoofline> {
    let case = StepCase::new(gpu, spec, layout, Dispatch::Fused)?;
    let bpp = bytes_moved_per_param(&case.opt, layout);
    let flops = muon_flops(&case.opt, layout);
    let copy = CopyKernel::new(gpu, (bpp * layout.numel() as f64).ceil() as u64)?;
    let base = match baseline {
        Some(b) => Some(StepCase::new(gpu, b, layout, Dispatch::Fused)?),
        None => None,
    };
    Ok((case, bpp, flops, copy, base))
}
