//! Step time of every optimizer on (a) a GPT-2-like mix of 50 tensors and
//! (b) one tensor of the same size, next to the same-device WGSL copy kernel
//! moving the same bytes; then ratios measured side by side (interleaved) in
//! the same run: fused / copy, mix / single, fused / per-tensor. Muon runs
//! on the mix only (its matrices with Muon, the rest with AdamW), beside
//! AdamW, with its Newton-Schulz products' GFLOP/s.
//!
//! `cargo bench --bench step` (all timings include the wait for the GPU);
//! `WGPU_OPTIM_BENCH_ONLY=adam,lamb cargo bench --bench step` runs only those.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use wgpu_optim::bench::{
    CopyKernel, bytes_moved_per_param, bytes_per_param, device_bytes_per_param, filled_params,
    gpt2_like_layout, interleaved, muon_flops, muon_spec, precision_cases, single_tensor_layout,
};
use wgpu_optim::optim::*;
use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet, ParamSetOptions};

/// Every standard optimizer, or those named in `WGPU_OPTIM_BENCH_ONLY`
/// (comma-separated report names, e.g. `adam,lamb`).
fn configs() -> Vec<(&'static str, OptimizerSpec)> {
    let all = wgpu_optim::bench::standard_optimizers();
    match std::env::var("WGPU_OPTIM_BENCH_ONLY") {
        Ok(only) => {
            let names: Vec<&str> = only.split(',').map(str::trim).collect();
            all.into_iter().filter(|(n, _)| names.contains(n)).collect()
        }
        Err(_) => all,
    }
}

struct Setup {
    params: ParamSet,
    opt: Optimizer,
}

fn setup(gpu: &Gpu, spec: &OptimizerSpec, layout: &ParamLayout, mode: Dispatch) -> Setup {
    setup_as(gpu, spec, layout, mode, ParamSetOptions::default())
}

fn setup_as(
    gpu: &Gpu,
    spec: &OptimizerSpec,
    layout: &ParamLayout,
    mode: Dispatch,
    options: ParamSetOptions,
) -> Setup {
    let params = filled_params(gpu, layout, options).unwrap();
    let opt = Optimizer::with_dispatch(gpu, spec, &params, mode).unwrap();
    Setup { params, opt }
}

fn step(gpu: &Gpu, s: &mut Setup) -> wgpu_optim::Result<()> {
    s.opt.step(gpu, &mut s.params)?;
    gpu.synchronize()
}

fn main() {
    let gpu = Gpu::new_default().expect("the benchmark needs a GPU adapter");
    let info = gpu.info();
    println!(
        "adapter: {} ({:?}, {:?})",
        info.name, info.backend, info.device_type
    );
    let mix = gpt2_like_layout();
    let n = mix.numel() as usize;
    let single = single_tensor_layout(n);
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut report = Vec::new();
    let mut muon = None;
    for (name, spec) in configs() {
        if let Algorithm::Muon(c) = spec.algorithm() {
            // Its own section below: a 3.7 M-element matrix costs 30 x
            // 1936^3 flops a step (about 10 s on lavapipe).
            muon = Some(*c);
            continue;
        }
        let bpp = bytes_per_param(spec.algorithm());
        let mut fused = setup(&gpu, &spec, &mix, Dispatch::Fused);
        let mut one = setup(&gpu, &spec, &single, Dispatch::Fused);
        let mut unfused = setup(&gpu, &spec, &mix, Dispatch::PerTensor);
        let copy = CopyKernel::new(&gpu, bpp * n as u64).unwrap();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("gpt2_mix", |b| b.iter(|| step(&gpu, &mut fused).unwrap()));
        g.bench_function("single_tensor", |b| {
            b.iter(|| step(&gpu, &mut one).unwrap())
        });
        g.bench_function("gpt2_mix_per_tensor", |b| {
            b.iter(|| step(&gpu, &mut unfused).unwrap())
        });
        g.throughput(Throughput::Bytes(copy.bytes));
        g.bench_function("copy_same_bytes", |b| {
            b.iter(|| {
                copy.submit(&gpu).unwrap();
                gpu.synchronize().unwrap()
            })
        });
        g.finish();

        // Ratios, each pair interleaved so both sides see the same load.
        let reps = 15;
        let (t_mix, t_copy) = interleaved(
            reps,
            || step(&gpu, &mut fused),
            || {
                copy.submit(&gpu)?;
                gpu.synchronize()
            },
        )
        .unwrap();
        let (t_mix2, t_one) =
            interleaved(reps, || step(&gpu, &mut fused), || step(&gpu, &mut one)).unwrap();
        let (t_mix3, t_unf) =
            interleaved(reps, || step(&gpu, &mut fused), || step(&gpu, &mut unfused)).unwrap();
        report.push((name, bpp, t_mix, t_copy, t_mix2, t_one, t_mix3, t_unf));
    }
    // Global-norm clipping over Adam alone, same mix, interleaved.
    let adam = OptimizerSpec::adam(AdamConfig::default());
    let mut plain = setup(&gpu, &adam, &mix, Dispatch::Fused);
    let mut clipped = setup(
        &gpu,
        &adam.clone().clip_by_global_norm(1.0),
        &mix,
        Dispatch::Fused,
    );
    let mut guarded = setup(
        &gpu,
        &adam
            .clone()
            .clip_by_global_norm(1.0)
            .nonfinite(wgpu_optim::grad::NonFinite::Skip),
        &mix,
        Dispatch::Fused,
    );
    {
        let mut g = c.benchmark_group("adam_clip");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("gpt2_mix", |b| b.iter(|| step(&gpu, &mut clipped).unwrap()));
        g.finish();
    }
    let (t_plain, t_clip) =
        interleaved(15, || step(&gpu, &mut plain), || step(&gpu, &mut clipped)).unwrap();
    let (t_plain2, t_guard) =
        interleaved(15, || step(&gpu, &mut plain), || step(&gpu, &mut guarded)).unwrap();

    // Zero penalty terms compiled out: Adam (weight decay and l1 zero in
    // every group) against Adam with an l1 of 1e-30 and a weight decay of
    // 1e-30 (both terms compiled in, numerically the same), interleaved.
    let with_terms = OptimizerSpec::adam(AdamConfig {
        weight_decay: 1e-30,
        l1: 1e-30,
        ..Default::default()
    });
    let mut lean = setup(&gpu, &adam, &mix, Dispatch::Fused);
    let mut full = setup(&gpu, &with_terms, &mix, Dispatch::Fused);
    let (t_lean, t_full) =
        interleaved(15, || step(&gpu, &mut lean), || step(&gpu, &mut full)).unwrap();
    drop((lean, full));

    // AdamW with each combination of param / grad and state formats on the
    // mix: each beside a copy of its own bytes and beside the all-f32
    // AdamW, interleaved.
    let mut dtypes = Vec::new();
    {
        let mut g = c.benchmark_group("adamw_dtypes");
        g.throughput(Throughput::Elements(n as u64));
        let cases = precision_cases();
        let mut f32_case = setup(&gpu, &cases[0].spec, &mix, Dispatch::Fused);
        for case in cases {
            let mut s = setup_as(&gpu, &case.spec, &mix, Dispatch::Fused, case.options);
            let bpp = bytes_moved_per_param(&s.opt, &mix);
            let held = device_bytes_per_param(&s.opt);
            let copy = CopyKernel::new(&gpu, (bpp * n as f64).ceil() as u64).unwrap();
            g.bench_function(&case.label, |b| b.iter(|| step(&gpu, &mut s).unwrap()));
            let (t_step, t_copy) = interleaved(
                15,
                || step(&gpu, &mut s),
                || {
                    copy.submit(&gpu)?;
                    gpu.synchronize()
                },
            )
            .unwrap();
            let (t_step2, t_f32) =
                interleaved(15, || step(&gpu, &mut s), || step(&gpu, &mut f32_case)).unwrap();
            dtypes.push((case.label, bpp, held, t_step, t_copy, t_step2, t_f32));
        }
        g.finish();
    }
    // Muon as its users run it on the mix (the hidden matrices with Muon,
    // embeddings, norms and biases with AdamW), beside AdamW on the same
    // tensors and the copy of its bytes; its products' GFLOP/s.
    let mut muon_report = None;
    if let Some(config) = muon {
        let spec = muon_spec(config, &mix);
        let mut s = setup(&gpu, &spec, &mix, Dispatch::Fused);
        let mut adamw = setup(
            &gpu,
            &OptimizerSpec::adamw(AdamWConfig::default()),
            &mix,
            Dispatch::Fused,
        );
        let bpp = bytes_moved_per_param(&s.opt, &mix);
        let flops = muon_flops(&s.opt, &mix);
        let copy = CopyKernel::new(&gpu, (bpp * n as f64).ceil() as u64).unwrap();
        let mut g = c.benchmark_group("muon");
        g.sample_size(10);
        g.bench_function("gpt2_mix", |b| b.iter(|| step(&gpu, &mut s).unwrap()));
        g.finish();
        let reps = 5;
        let (t_step, t_copy) = interleaved(
            reps,
            || step(&gpu, &mut s),
            || {
                copy.submit(&gpu)?;
                gpu.synchronize()
            },
        )
        .unwrap();
        let (t_step2, t_adamw) =
            interleaved(reps, || step(&gpu, &mut s), || step(&gpu, &mut adamw)).unwrap();
        muon_report = Some((flops, t_step, t_copy, t_step2, t_adamw));
    }
    c.final_summary();

    println!(
        "\nratios on {} ({:?}); {} params in {} tensors; medians of 15 interleaved runs",
        info.name,
        info.backend,
        n,
        mix.len()
    );
    println!(
        "{:<13} {:>5} {:>10} {:>10} {:>8} {:>11} {:>10} {:>14}",
        "optimizer", "B/p", "step ms", "Mparams/s", "GB/s", "step/copy", "mix/one", "fused/per-t"
    );
    for (name, bpp, t_mix, t_copy, t_mix2, t_one, t_mix3, t_unf) in report {
        let s = t_mix.as_secs_f64();
        println!(
            "{:<13} {:>5} {:>10.2} {:>10.1} {:>8.2} {:>11.3} {:>10.3} {:>14.3}",
            name,
            bpp,
            s * 1e3,
            n as f64 / s / 1e6,
            bpp as f64 * n as f64 / s / 1e9,
            s / t_copy.as_secs_f64(),
            t_mix2.as_secs_f64() / t_one.as_secs_f64(),
            t_mix3.as_secs_f64() / t_unf.as_secs_f64(),
        );
    }
    println!(
        "adam + clip_by_global_norm / adam: {:.3} ({:.2} ms vs {:.2} ms); with the non-finite guard too: {:.3}",
        t_clip.as_secs_f64() / t_plain.as_secs_f64(),
        t_clip.as_secs_f64() * 1e3,
        t_plain.as_secs_f64() * 1e3,
        t_guard.as_secs_f64() / t_plain2.as_secs_f64(),
    );
    println!(
        "adam with zero weight decay and l1 compiled out / with both terms: {:.3} ({:.2} ms vs {:.2} ms)",
        t_lean.as_secs_f64() / t_full.as_secs_f64(),
        t_lean.as_secs_f64() * 1e3,
        t_full.as_secs_f64() * 1e3,
    );
    println!(
        "\nAdamW dtypes: params and grads + states [+ update of 16-bit params] (tensors under \
         4096 elements keep f32 states)"
    );
    println!(
        "{:<22} {:>9} {:>8} {:>10} {:>11} {:>10}",
        "params+states", "moved B/p", "held B/p", "step ms", "step/copy", "step/f32"
    );
    for (label, bpp, held, t_step, t_copy, t_step2, t_f32) in dtypes {
        println!(
            "{:<22} {:>9.2} {:>8.2} {:>10.2} {:>11.3} {:>10.3}",
            label,
            bpp,
            held,
            t_step.as_secs_f64() * 1e3,
            t_step.as_secs_f64() / t_copy.as_secs_f64(),
            t_step2.as_secs_f64() / t_f32.as_secs_f64(),
        );
    }
    if let Some((flops, t_step, t_copy, t_step2, t_adamw)) = muon_report {
        println!(
            "\nmuon on the mix (hidden matrices; AdamW on embeddings, norms, biases): {:.2} ms, \
             step/copy {:.1}, step/adamw {:.1}, Newton-Schulz {:.2e} flops = {:.2} GFLOP/s over \
             the whole step (medians of 5 interleaved runs)",
            t_step.as_secs_f64() * 1e3,
            t_step.as_secs_f64() / t_copy.as_secs_f64(),
            t_step2.as_secs_f64() / t_adamw.as_secs_f64(),
            flops,
            flops / t_step.as_secs_f64() / 1e9,
        );
    }
}
