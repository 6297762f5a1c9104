//! The harness's big rows (`--big`): every optimizer on a GPT-2-XL-like
//! mix, then AdamW on 7 B parameters where memory allows.

use indicatif::ProgressBar;
use wgpu_optim::bench::{
    CopyKernel, bytes_moved_per_param, device_bytes_per_param, flat_layout, for_layout,
    gpt2_xl_like_layout, muon_flops,
};
use wgpu_optim::optim::{AdamWConfig, Algorithm, OptimizerSpec, PassTimestamps};
use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};

use crate::cli::Plan;
use crate::suite::{Case, Clock, F32_PARAMS, Measurement, Row, optimizers};

/// A step over a ParamSet shared by several optimizers in turn (the big
/// rows: one set of gigabytes, no host upload).
struct SharedStep<'a> {
    params: &'a mut ParamSet,
    opt: Optimizer,
}

impl Case for SharedStep<'_> {
    fn submit(&mut self, gpu: &Gpu, ts: Option<&PassTimestamps>) -> wgpu_optim::Result<()> {
        self.opt.set_pass_timestamps(ts.cloned());
        self.opt.step(gpu, self.params)
    }
}

/// The copy kernel for a step moving `bytes`, capped at 8 GiB (the big
/// rows' copies could not be allocated beside the step): the kernel and the
/// step's bytes over its bytes.
fn capped_copy(gpu: &Gpu, bytes: u64) -> wgpu_optim::Result<(CopyKernel, f64)> {
    let copy = CopyKernel::new(gpu, bytes.min(8 << 30))?;
    let scale = bytes as f64 / copy.bytes as f64;
    Ok((copy, scale))
}

/// One fused step of `opt` over `params` (named `name` on `layout_name`)
/// interleaved with a copy of its bytes capped at 8 GiB, as a measurement.
fn measure(
    gpu: &Gpu,
    clock: &Clock,
    (params, opt): (&mut ParamSet, Optimizer),
    (name, layout_name, layout): (&str, &str, &ParamLayout),
    reps: usize,
) -> wgpu_optim::Result<Measurement> {
    let mut case = SharedStep { params, opt };
    let bpp = bytes_moved_per_param(&case.opt, layout);
    let bytes = (bpp * layout.numel() as f64).ceil() as u64;
    let (mut copy, scale) = capped_copy(gpu, bytes)?;
    let t = clock.interleaved(gpu, reps, &mut [&mut case, &mut copy])?;
    let row = Row {
        name,
        layout_name,
        layout,
        dispatches: case.opt.dispatches_per_step(),
        dispatch: "fused",
        state_dtype: "f32",
        params: F32_PARAMS,
        bpp,
        held: device_bytes_per_param(&case.opt),
        step: t[0],
        copy: (&copy, t[1]),
        baseline: None,
        flops: muon_flops(&case.opt, layout),
        copy_scale: scale,
    };
    Ok(row.measurement(reps))
}

/// The big rows (`--big`), after everything else: every optimizer fused on
/// the GPT-2-XL-like mix (1,557,611,200 parameters; Muon as used, one
/// repetition), then AdamW on 7 B parameters in tensors of 2^28. Params and
/// grads are the device's zeros (no host upload of gigabytes); each case is
/// interleaved with a copy kernel of its bytes capped at 8 GiB, so
/// `step/copy` compares bandwidths. A case that cannot be built (memory,
/// binding limits) is reported on stderr and skipped. `--quick` scales both
/// down (2 layers of 64, 2^18 parameters).
pub(crate) fn big_rows(
    gpu: &Gpu,
    clock: &Clock,
    plan: &Plan,
    progress: &ProgressBar,
    tag: &str,
) -> wgpu_optim::Result<Vec<Measurement>> {
    let (xl, flat_n, reps) = if plan.quick {
        (gpt2_xl_like_layout(2, 64, 512), 1u64 << 18, 1)
    } else {
        (
            gpt2_xl_like_layout(48, 1600, 50257),
            7_000_000_000u64,
            plan.reps.min(5),
        )
    };
    let mut out = Vec::new();
    let mut params = ParamSet::new(gpu, &xl)?;
    for (name, spec) in optimizers() {
        progress.set_message(format!("{tag}: {name} gpt2_xl_like"));
        let muon = matches!(spec.algorithm(), Algorithm::Muon(_));
        let reps = if muon { 1 } else { reps };
        let opt = match Optimizer::new(gpu, &for_layout(&spec, &xl), &params) {
            Ok(o) => o,
            Err(e) => {
                progress.suspend(|| eprintln!("{tag}: {name} on gpt2_xl_like skipped: {e}"));
                progress.inc(1);
                continue;
            }
        };
        out.push(measure(
            gpu,
            clock,
            (&mut params, opt),
            (name, "gpt2_xl_like", &xl),
            reps,
        )?);
        progress.inc(1);
    }
    drop(params);

    progress.set_message(format!("{tag}: adamw flat_7b"));
    let flat = flat_layout(flat_n);
    let adamw = OptimizerSpec::adamw(AdamWConfig::default());
    let built = ParamSet::new(gpu, &flat).and_then(|p| {
        let o = Optimizer::new(gpu, &adamw, &p)?;
        Ok((p, o))
    });
    match built {
        Ok((mut p, opt)) => {
            out.push(measure(
                gpu,
                clock,
                (&mut p, opt),
                ("adamw", "flat_7b", &flat),
                reps,
            )?);
        }
        Err(e) => progress.suspend(|| {
            eprintln!(
                "{tag}: the {flat_n}-parameter AdamW step skipped: {e} (params, grads and two f32 \
                 states need {} GB)",
                flat_n * 16 / 1_000_000_000
            )
        }),
    }
    progress.inc(1);
    Ok(out)
}
