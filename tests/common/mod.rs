//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod cases;
pub mod half;
pub mod schedule_args;

use std::sync::OnceLock;

use serde::Deserialize;
use wgpu_optim::Gpu;
use wgpu_optim::optim::{
    AdadeltaConfig, AdafactorConfig, AdagradConfig, AdamConfig, AdamWConfig, AdamaxConfig,
    AdjustLr, AdoptConfig, AsgdConfig, LambConfig, LarsConfig, LionConfig, MuonConfig, NAdamConfig,
    OptimizerSpec, ParamGroup, RAdamConfig, RmsPropConfig, RpropConfig, ScheduleFreeAdamWConfig,
    ScheduleFreeSgdConfig, SgdConfig,
};

/// A fresh device on the default adapter. There is no skip: a machine without
/// an adapter fails every GPU test, with the reason. (Install
/// `mesa-vulkan-drivers` for lavapipe on a machine without a GPU.)
pub fn new_gpu() -> Gpu {
    match Gpu::new_default() {
        Ok(g) => g,
        Err(e) => panic!("GPU tests need an adapter and none could be opened: {e}"),
    }
}

/// One device shared by the tests of a binary.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(new_gpu)
}

/// A tiny deterministic generator (SplitMix64), so tests need no `rand`:
/// `Rng(seed)`, then `next_u64`, `f32` (uniform in [-1, 1), exact in f32) and
/// `vec(n, scale)`. (Not every test binary uses it; `dead_code` above does
/// not cover an import.)
#[allow(unused_imports)]
pub use wgpu_optim::rng::SplitMix64 as Rng;

/// One random tensor per tensor of `layout`, uniform in [-scale, scale).
pub fn random_tensors(
    rng: &mut Rng,
    layout: &wgpu_optim::ParamLayout,
    scale: f32,
) -> Vec<Vec<f32>> {
    layout
        .tensors()
        .iter()
        .map(|t| rng.vec(t.numel as usize, scale))
        .collect()
}

/// The tensors in f64 (the reference's inputs).
pub fn widen(v: &[Vec<f32>]) -> Vec<Vec<f64>> {
    v.iter()
        .map(|t| t.iter().map(|&x| x as f64).collect())
        .collect()
}

/// A float of a golden JSON file: a number, or one of the strings `"nan"`,
/// `"inf"` and `"-inf"` that the generators write for what JSON cannot hold.
pub fn json_f64(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().unwrap(),
        serde_json::Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("bad float {other}"),
        },
        other => panic!("not a float: {other}"),
    }
}

/// `|a - b| <= rtol * (|b| + scale)`: a relative tolerance measured against
/// the element and the magnitude of its tensor (`scale`, e.g. max |b|), since
/// f32 rounding errors are relative to the operands that produced a value.
/// Returns the worst ratio error / allowed (<= 1 passes).
pub fn worst_ratio(a: &[f32], b: &[f64], rtol: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let err = (x as f64 - y).abs();
            if x.is_nan() || y.is_nan() {
                return if x.is_nan() && y.is_nan() {
                    0.0
                } else {
                    f64::INFINITY
                };
            }
            err / (rtol * (y.abs() + scale))
        })
        .fold(0.0, f64::max)
}

#[derive(Debug, Deserialize)]
pub struct GoldenFile {
    pub torch_version: String,
    pub steps: usize,
    pub cases: Vec<GoldenCase>,
}

#[derive(Debug, Deserialize)]
pub struct GoldenGroup {
    pub params: Vec<usize>,
    pub lr: f64,
    pub weight_decay: f64,
    pub l1: f64,
    /// Any other hyperparameter the group overrides (beta1, eps, momentum, ...).
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
pub struct GoldenCase {
    pub name: String,
    pub optimizer: String,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub shapes: Vec<Vec<usize>>,
    #[serde(default)]
    pub groups: Vec<GoldenGroup>,
    pub params0: Vec<Vec<f64>>,
    pub grads: Vec<Vec<Vec<f64>>>,
    pub params: Vec<Vec<Vec<f64>>>,
    pub state: std::collections::BTreeMap<String, Vec<Vec<f64>>>,
    /// Schedule-Free: each group's running state after the last step.
    #[serde(default)]
    pub running: Vec<std::collections::BTreeMap<String, f64>>,
    /// Schedule-Free: the params after `eval()` following the last step.
    #[serde(default)]
    pub params_eval: Option<Vec<Vec<f64>>>,
}

pub fn golden() -> GoldenFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/optim.json");
    let text = std::fs::read_to_string(path).expect("tests/golden/optim.json is committed");
    serde_json::from_str(&text).expect("optim.json parses")
}

impl GoldenCase {
    fn f(&self, k: &str) -> f64 {
        self.config[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{}: config key {k}", self.name))
    }
    fn b(&self, k: &str) -> bool {
        self.config[k]
            .as_bool()
            .unwrap_or_else(|| panic!("{}: config key {k}", self.name))
    }
    /// Tensor names used for golden cases: t0, t1, ...
    pub fn names(&self) -> Vec<String> {
        (0..self.shapes.len()).map(|i| format!("t{i}")).collect()
    }
    pub fn layout(&self) -> wgpu_optim::ParamLayout {
        let names = self.names();
        let pairs: Vec<(&str, &[usize])> = names
            .iter()
            .zip(&self.shapes)
            .map(|(n, s)| (n.as_str(), s.as_slice()))
            .collect();
        wgpu_optim::ParamLayout::new(&pairs).unwrap()
    }
    /// The case's optimizer as a spec of this crate.
    pub fn spec(&self) -> OptimizerSpec {
        let mut spec = match self.optimizer.as_str() {
            "sgd" => OptimizerSpec::sgd(SgdConfig {
                lr: self.f("lr"),
                momentum: self.f("momentum"),
                dampening: self.f("dampening"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                nesterov: self.b("nesterov"),
                maximize: self.b("maximize"),
            }),
            "adam" => OptimizerSpec::adam(AdamConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                amsgrad: self.b("amsgrad"),
                maximize: self.b("maximize"),
            }),
            "adamw" => OptimizerSpec::adamw(AdamWConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                amsgrad: self.b("amsgrad"),
                maximize: self.b("maximize"),
            }),
            "adagrad" => OptimizerSpec::adagrad(AdagradConfig {
                lr: self.f("lr"),
                lr_decay: self.f("lr_decay"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                initial_accumulator_value: self.f("initial_accumulator_value"),
                eps: self.f("eps"),
                maximize: self.b("maximize"),
            }),
            "adadelta" => OptimizerSpec::adadelta(AdadeltaConfig {
                lr: self.f("lr"),
                rho: self.f("rho"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                maximize: self.b("maximize"),
            }),
            "rmsprop" => OptimizerSpec::rmsprop(RmsPropConfig {
                lr: self.f("lr"),
                alpha: self.f("alpha"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                momentum: self.f("momentum"),
                centered: self.b("centered"),
                maximize: self.b("maximize"),
            }),
            "adamax" => OptimizerSpec::adamax(AdamaxConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                maximize: self.b("maximize"),
            }),
            "nadam" => OptimizerSpec::nadam(NAdamConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                momentum_decay: self.f("momentum_decay"),
                l1: self.f("l1"),
                decoupled_weight_decay: self.b("decoupled_weight_decay"),
                maximize: self.b("maximize"),
            }),
            "radam" => OptimizerSpec::radam(RAdamConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                decoupled_weight_decay: self.b("decoupled_weight_decay"),
                maximize: self.b("maximize"),
            }),
            "asgd" => OptimizerSpec::asgd(AsgdConfig {
                lr: self.f("lr"),
                lambd: self.f("lambd"),
                alpha: self.f("alpha"),
                t0: self.f("t0"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                maximize: self.b("maximize"),
            }),
            "rprop" => OptimizerSpec::rprop(RpropConfig {
                lr: self.f("lr"),
                etaminus: self.f("etaminus"),
                etaplus: self.f("etaplus"),
                step_size_min: self.f("step_size_min"),
                step_size_max: self.f("step_size_max"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                maximize: self.b("maximize"),
            }),
            "lion" => OptimizerSpec::lion(LionConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                maximize: self.b("maximize"),
            }),
            "adopt" => OptimizerSpec::adopt(AdoptConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                decoupled_weight_decay: self.b("decoupled_weight_decay"),
                nesterov: self.b("nesterov"),
                clip: self.b("clip"),
                maximize: self.b("maximize"),
            }),
            "lamb" => OptimizerSpec::lamb(LambConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                clamp_value: self.f("clamp_value"),
                l1: self.f("l1"),
                adam: self.b("adam"),
                debias: self.b("debias"),
                maximize: self.b("maximize"),
            }),
            "lars" => OptimizerSpec::lars(LarsConfig {
                lr: self.f("lr"),
                weight_decay: self.f("weight_decay"),
                trust_coefficient: self.f("trust_coefficient"),
                eps: self.f("eps"),
                momentum: self.f("momentum"),
                trust_ratio_mask: self.f("trust_ratio_mask"),
                l1: self.f("l1"),
                nesterov: self.b("nesterov"),
                maximize: self.b("maximize"),
            }),
            "muon" => OptimizerSpec::muon(MuonConfig {
                lr: self.f("lr"),
                weight_decay: self.f("weight_decay"),
                momentum: self.f("momentum"),
                nesterov: self.b("nesterov"),
                ns_coefficients: (self.f("ns_a"), self.f("ns_b"), self.f("ns_c")),
                eps: self.f("eps"),
                ns_steps: self.f("ns_steps") as u32,
                adjust_lr_fn: match self.config["adjust_lr_fn"].as_str() {
                    Some("original") => AdjustLr::Original,
                    Some("match_rms_adamw") => AdjustLr::MatchRmsAdamW,
                    Some("spectral_unclamped") => AdjustLr::SpectralUnclamped,
                    other => panic!("{}: adjust_lr_fn {other:?}", self.name),
                },
                l1: self.f("l1"),
                maximize: self.b("maximize"),
            }),
            "adafactor" => OptimizerSpec::adafactor(AdafactorConfig {
                lr: self.f("lr"),
                beta2_decay: self.f("beta2_decay"),
                eps1: self.f("eps1"),
                eps2: self.f("eps2"),
                d: self.f("d"),
                weight_decay: self.f("weight_decay"),
                l1: self.f("l1"),
                maximize: self.b("maximize"),
            }),
            "schedule_free_adamw" => OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig {
                lr: self.f("lr"),
                beta1: self.f("beta1"),
                beta2: self.f("beta2"),
                eps: self.f("eps"),
                weight_decay: self.f("weight_decay"),
                warmup_steps: self.f("warmup_steps"),
                r: self.f("r"),
                weight_lr_power: self.f("weight_lr_power"),
                l1: self.f("l1"),
                lr_max: self.f("lr_max"),
                weight_sum: self.f("weight_sum"),
                maximize: self.b("maximize"),
            }),
            "schedule_free_sgd" => OptimizerSpec::schedule_free_sgd(ScheduleFreeSgdConfig {
                lr: self.f("lr"),
                momentum: self.f("momentum"),
                weight_decay: self.f("weight_decay"),
                warmup_steps: self.f("warmup_steps"),
                r: self.f("r"),
                weight_lr_power: self.f("weight_lr_power"),
                l1: self.f("l1"),
                lr_max: self.f("lr_max"),
                weight_sum: self.f("weight_sum"),
                maximize: self.b("maximize"),
            }),
            other => panic!("unknown optimizer {other}"),
        };
        let names = self.names();
        for g in &self.groups {
            let mut group = ParamGroup::names(g.params.iter().map(|&i| names[i].clone()))
                .lr(g.lr)
                .weight_decay(g.weight_decay)
                .l1(g.l1);
            for (k, v) in &g.other {
                group = group.set(k.as_str(), *v);
            }
            spec = spec.group(group);
        }
        spec
    }
}

pub fn to_f32(v: &[Vec<f64>]) -> Vec<Vec<f32>> {
    v.iter()
        .map(|t| t.iter().map(|&x| x as f32).collect())
        .collect()
}

/// Runs `spec` over `layout` (chunks of `chunk` elements) for 6 steps of
/// random gradients from `seed`, once uninterrupted and once saved to a
/// checkpoint after 3 steps, loaded into a fresh optimizer and resumed;
/// asserts that both end bitwise equal and returns the checkpoint file's
/// bytes (the state after 3 steps) for further checks.
pub fn assert_resume_is_bitwise(
    spec: &wgpu_optim::optim::OptimizerSpec,
    layout: &wgpu_optim::ParamLayout,
    chunk: u64,
    seed: u64,
) -> Vec<u8> {
    let options = wgpu_optim::ParamSetOptions {
        chunk_elems: Some(chunk),
        ..Default::default()
    };
    assert_resume_is_bitwise_with(spec, layout, options, seed)
}

/// [`assert_resume_is_bitwise`] over a ParamSet allocated with `options`
/// (params and grads in bf16 or f16); the params are compared as stored.
pub fn assert_resume_is_bitwise_with(
    spec: &wgpu_optim::optim::OptimizerSpec,
    layout: &wgpu_optim::ParamLayout,
    options: wgpu_optim::ParamSetOptions,
    seed: u64,
) -> Vec<u8> {
    use wgpu_optim::checkpoint::{self, TrainingState};
    use wgpu_optim::{Optimizer, ParamSet};
    let gpu = gpu();
    let path = std::env::temp_dir().join(format!(
        "wgpu-optim-resume-{}-{seed}-{}-{}.safetensors",
        std::process::id(),
        spec.algorithm().name(),
        options.param_dtype.as_str()
    ));
    let mut rng = Rng(seed);
    let p0 = random_tensors(&mut rng, layout, 1.0);
    let grads: Vec<Vec<Vec<f32>>> = (0..6)
        .map(|_| random_tensors(&mut rng, layout, 0.5))
        .collect();
    let fresh = || {
        let mut params = ParamSet::with_options(gpu, layout, options).unwrap();
        params.write_all(gpu, &p0).unwrap();
        let opt = Optimizer::new(gpu, spec, &params).unwrap();
        (params, opt)
    };
    let run = |params: &mut ParamSet, opt: &mut Optimizer, steps: std::ops::Range<usize>| {
        for s in steps {
            params.write_grads_all(gpu, &grads[s]).unwrap();
            opt.step(gpu, params).unwrap();
        }
    };
    let (mut wp, mut wo) = fresh();
    run(&mut wp, &mut wo, 0..6);
    let (mut sp, mut so) = fresh();
    run(&mut sp, &mut so, 0..3);
    checkpoint::save(&path, gpu, &sp, &mut so, &TrainingState::default()).unwrap();
    let (mut rp, mut ro) = fresh();
    checkpoint::load(&path, gpu, &mut rp, &mut ro).unwrap();
    run(&mut rp, &mut ro, 3..6);
    let bits = |p: &ParamSet| -> Vec<Vec<u8>> {
        layout
            .tensors()
            .iter()
            .map(|t| p.read_raw(gpu, &t.name).unwrap())
            .collect()
    };
    assert_eq!(bits(&rp), bits(&wp), "resumed against uninterrupted");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    bytes
}
