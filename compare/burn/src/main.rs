//! wgpu-optim against burn's optimizers on burn's fused wgpu backend, side by
//! side in one process on the default adapter (issue 14's comparison).
//!
//! The model is burn's 52-tensor GPT-2-like mix (3,749,376 params): the
//! harness's `gpt2_like_layout` (50 tensors) and a final layer norm's weight
//! and bias of 256. Every param starts at 0.5 and every gradient is 0.01, as
//! in `wgpu_optim::bench::filled_params`. Each side runs its own optimizer
//! with the same hyperparameters (burn's Adam puts eps inside the bias
//! correction; the arithmetic per element is the same: two moments, one
//! square root, one division).
//!
//! Per optimizer and round, both sides run in turn (the order alternating
//! between rounds): `warmup` steps, then `steps` steps each timed alone
//! (step + wait for the queue). Each side's figure is the median of all its
//! timed steps; the ratio is burn's median over ours. Beside them the WGSL
//! copy kernel moving the bytes of one of our steps, timed the same way, so
//! `step / copy` comes from the same run.
//!
//! `cargo run --release -- [--rounds 4] [--warmup 3] [--steps 10] [--only adam,adamw,sgd_momentum] [--json FILE]`

use std::time::{Duration, Instant};

use burn::module::{Module, Param};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor};
use wgpu_optim::bench::{CopyKernel, bytes_per_param, filled_params, gpt2_like_layout};
use wgpu_optim::optim::{
    AdamConfig as OurAdam, AdamWConfig as OurAdamW, OptimizerSpec, SgdConfig as OurSgd,
};
use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet, ParamSetOptions};

const LR: f64 = 1e-3;

/// The mix as a burn module: one param per tensor, in the layout's shapes
/// (vectors as `[1, n]`).
#[derive(Module, Debug)]
struct Mix {
    params: Vec<Param<Tensor<2>>>,
}

fn mix_layout() -> ParamLayout {
    let base = gpt2_like_layout();
    let mut t: Vec<(String, Vec<usize>)> = base
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    t.push(("ln_f.weight".into(), vec![256]));
    t.push(("ln_f.bias".into(), vec![256]));
    let pairs: Vec<(&str, &[usize])> = t.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    ParamLayout::new(&pairs).expect("unique names")
}

/// The mix's parameters in one matrix (`[n / 256, 256]`): both sides then
/// run one kernel's worth of work, with no per-tensor cost.
fn single_layout(n: u64) -> ParamLayout {
    ParamLayout::new(&[("w", &[n as usize / 256, 256][..])]).expect("one name")
}

fn shape2(s: &[usize]) -> [usize; 2] {
    match s {
        [n] => [1, *n],
        [a, b] => [*a, *b],
        _ => unreachable!("the mix holds vectors and matrices"),
    }
}

struct Burn {
    device: Device,
    module: Option<Mix>,
    grads: Vec<Tensor<2>>,
    optim: ModuleOptimizer,
}

impl Burn {
    fn new(device: &Device, layout: &ParamLayout, optim: ModuleOptimizer) -> Burn {
        let params = layout
            .tensors()
            .iter()
            .map(|t| Param::from_tensor(Tensor::full(shape2(&t.shape), 0.5, device)))
            .collect();
        let grads = layout
            .tensors()
            .iter()
            .map(|t| Tensor::full(shape2(&t.shape), 0.01, device))
            .collect();
        device.sync().expect("burn's device syncs");
        Burn {
            device: device.clone(),
            module: Some(Mix { params }),
            grads,
            optim,
        }
    }

    /// One step and the wait for it; returns the time until `step`
    /// returned (burn records the step's operations lazily, fuses them and
    /// submits; the rest is the wait for the device).
    fn step(&mut self) -> Duration {
        let t = Instant::now();
        let module = self
            .module
            .take()
            .expect("the module is there between steps");
        let mut grads = GradientsParams::new();
        for (p, g) in module.params.iter().zip(&self.grads) {
            grads.register(p.id, g.clone());
        }
        self.module = Some(self.optim.step(LR, module, grads));
        let host = t.elapsed();
        self.device.sync().expect("burn's step runs");
        host
    }
}

struct Ours {
    params: ParamSet,
    opt: Optimizer,
}

impl Ours {
    fn step(&mut self, gpu: &Gpu) {
        self.opt.step(gpu, &mut self.params).expect("our step runs");
        gpu.synchronize().expect("our step finishes");
    }
}

struct Case {
    name: &'static str,
    ours: OptimizerSpec,
    burn: fn() -> ModuleOptimizer,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "adam",
            ours: OptimizerSpec::adam(OurAdam {
                lr: LR,
                ..Default::default()
            }),
            burn: || AdamConfig::new().with_epsilon(1e-8).init(),
        },
        Case {
            name: "adamw",
            ours: OptimizerSpec::adamw(OurAdamW {
                lr: LR,
                ..Default::default()
            }),
            burn: || {
                AdamWConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(0.01)
                    .init()
            },
        },
        Case {
            name: "sgd_momentum",
            ours: OptimizerSpec::sgd(OurSgd {
                lr: LR,
                momentum: 0.9,
                ..Default::default()
            }),
            burn: || {
                SgdConfig::new()
                    .with_momentum(Some(
                        MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
                    ))
                    .init()
            },
        },
    ]
}

fn timed<T>(out: &mut Vec<Duration>, warmup: usize, steps: usize, mut f: impl FnMut() -> T) {
    for _ in 0..warmup {
        f();
    }
    for _ in 0..steps {
        let s = Instant::now();
        f();
        out.push(s.elapsed());
    }
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn range_ms(v: &[Duration]) -> (f64, f64) {
    let min = v.iter().min().expect("timed").as_secs_f64() * 1e3;
    let max = v.iter().max().expect("timed").as_secs_f64() * 1e3;
    (min, max)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} takes a value")),
        None => default,
    }
}

struct Row {
    layout: &'static str,
    optimizer: &'static str,
    burn: Vec<Duration>,
    burn_host: Vec<Duration>,
    ours: Vec<Duration>,
    copy: Vec<Duration>,
}

/// One optimizer on one layout: both sides and the copy, interleaved.
fn measure(
    gpu: &Gpu,
    device: &Device,
    (name, layout): (&'static str, &ParamLayout),
    case: &Case,
    (rounds, warmup, steps): (usize, usize, usize),
) -> Row {
    let n = layout.numel();
    let params = filled_params(gpu, layout, ParamSetOptions::default()).expect("params");
    let opt = Optimizer::new(gpu, &case.ours, &params).expect("optimizer");
    let mut ours = Ours { params, opt };
    let mut burn = Burn::new(device, layout, (case.burn)());
    let copy =
        CopyKernel::new(gpu, bytes_per_param(case.ours.algorithm()) * n).expect("copy kernel");
    let mut row = Row {
        layout: name,
        optimizer: case.name,
        burn: Vec::new(),
        burn_host: Vec::new(),
        ours: Vec::new(),
        copy: Vec::new(),
    };
    let mut host = Vec::new();
    for r in 0..rounds {
        let mut run_burn = |row: &mut Row| {
            host.clear();
            timed(&mut row.burn, warmup, steps, || host.push(burn.step()));
            row.burn_host.extend(&host[warmup..]);
        };
        if r % 2 == 0 {
            run_burn(&mut row);
            timed(&mut row.ours, warmup, steps, || ours.step(gpu));
        } else {
            timed(&mut row.ours, warmup, steps, || ours.step(gpu));
            run_burn(&mut row);
        }
        timed(&mut row.copy, warmup, steps, || {
            copy.submit(gpu).expect("copy");
            gpu.synchronize().expect("copy finishes");
        });
    }
    row
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = arg(&args, "--rounds", 4);
    let warmup: usize = arg(&args, "--warmup", 3);
    let steps: usize = arg(&args, "--steps", 10);
    let only: String = arg(&args, "--only", String::new());
    let json: String = arg(&args, "--json", String::new());

    let mix = mix_layout();
    let n = mix.numel();
    let single = single_layout(n);
    let gpu = Gpu::new_default().expect("wgpu-optim needs an adapter");
    let info = gpu.info();
    // burn's optimizers step params of an autodiff device (as after a
    // backward pass); the gradients live on it too.
    let device = Device::default().autodiff();
    println!(
        "adapter (wgpu-optim): {} ({:?}, {:?}); burn device: {device:?}",
        info.name, info.backend, info.device_type
    );
    println!(
        "mix: {} tensors, {n} params; single: one [{}, 256] tensor; {rounds} rounds x \
         ({warmup} warm-up + {steps} timed steps), medians of step + wait",
        mix.len(),
        n / 256
    );
    println!(
        "| layout | optimizer | burn ms (range) | burn host ms | wgpu-optim ms (range) | copy ms | \
         burn / wgpu-optim | wgpu-optim step / copy |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for case in cases() {
        if !only.is_empty() && !only.split(',').any(|o| o == case.name) {
            continue;
        }
        for layout in [("mix", &mix), ("single", &single)] {
            let row = measure(&gpu, &device, layout, &case, (rounds, warmup, steps));
            let (rb, ro) = (range_ms(&row.burn), range_ms(&row.ours));
            let (mb, mh) = (
                median_ms(row.burn.clone()),
                median_ms(row.burn_host.clone()),
            );
            let (mo, mc) = (median_ms(row.ours.clone()), median_ms(row.copy.clone()));
            println!(
                "| {} | {} | {mb:.2} ({:.2}-{:.2}) | {mh:.2} | {mo:.2} ({:.2}-{:.2}) | {mc:.2} | \
                 {:.3} | {:.3} |",
                row.layout,
                row.optimizer,
                rb.0,
                rb.1,
                ro.0,
                ro.1,
                mb / mo,
                mo / mc
            );
            rows.push(serde_json::json!({
                "layout": row.layout,
                "optimizer": row.optimizer,
                "burn_ms": mb,
                "burn_host_ms": mh,
                "wgpu_optim_ms": mo,
                "copy_ms": mc,
                "burn_over_wgpu_optim": mb / mo,
                "step_over_copy": mo / mc,
            }));
        }
    }
    if !json.is_empty() {
        let doc = serde_json::json!({
            "adapter": info.name,
            "backend": format!("{:?}", info.backend),
            "tensors": mix.len(),
            "params": n,
            "rounds": rounds,
            "warmup": warmup,
            "steps": steps,
            "rows": rows,
        });
        std::fs::write(&json, serde_json::to_string_pretty(&doc).expect("json"))
            .expect("write json");
    }
}
