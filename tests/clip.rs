//! Gradient clipping, the non-finite guard and loss scaling on the device,
//! against PyTorch (`tests/golden/gen_clip.py` wrote `clip.json`) and the f64
//! reference.

mod common;

use common::{Rng, gpu, json_f64, new_gpu, worst_ratio};
use serde::Deserialize;
use serde_json::Value;
use wgpu_optim::grad::{GradScalerConfig, GradientConfig, LossScale, NonFinite, NormType};
use wgpu_optim::optim::*;
use wgpu_optim::reference::Reference;
use wgpu_optim::{Error, ErrorKind, Optimizer, ParamLayout, ParamSet};

/// f32 on the device: the norm is a sum of up to ~10^3 rescaled squares,
/// each rounding adding up to 6e-8 relative; 1e-5 covers a few hundred
/// roundings in the worst order.
const NORM_RTOL: f64 = 1e-5;
/// Params after up to 12 f32 steps (see golden.rs: ~10 roundings per step),
/// plus f32 `pow` for bias corrections after a skipped step, whose error is
/// within the same order: 2e-5.
const GPU_RTOL: f64 = 2e-5;

#[derive(Deserialize)]
struct ClipFile {
    norms: Vec<NormCase>,
    value: ValueCase,
    trajectories: Vec<Trajectory>,
    scaler: ScalerCase,
}
#[derive(Deserialize)]
struct NormCase {
    name: String,
    norm_type: Value,
    max_norm: f64,
    shapes: Vec<Vec<usize>>,
    grads: Vec<Vec<f64>>,
    total_norm: f64,
    clipped: Vec<Vec<f64>>,
}
#[derive(Deserialize)]
struct ValueCase {
    clip_value: f64,
    shapes: Vec<Vec<usize>>,
    grads: Vec<Vec<f64>>,
    clipped: Vec<Vec<f64>>,
}
#[derive(Deserialize)]
struct Trajectory {
    name: String,
    lr: f64,
    max_norm: f64,
    norm_type: Value,
    per_group: bool,
    clip_value: Option<f64>,
    shapes: Vec<Vec<usize>>,
    params0: Vec<Vec<f64>>,
    grads: Vec<Vec<Vec<f64>>>,
    params: Vec<Vec<Vec<f64>>>,
    norms: Vec<Vec<f64>>,
}
#[derive(Deserialize)]
struct ScalerCase {
    lr: f64,
    init_scale: f64,
    growth_factor: f64,
    backoff_factor: f64,
    growth_interval: u32,
    max_norm: f64,
    shapes: Vec<Vec<usize>>,
    params0: Vec<Vec<f64>>,
    raw_grads: Vec<Vec<Vec<Value>>>,
    found_inf: Vec<bool>,
    scale_after: Vec<f64>,
    params: Vec<Vec<Vec<f64>>>,
}

fn load() -> ClipFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/clip.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn norm_type(v: &Value) -> NormType {
    match v {
        Value::String(s) if s == "inf" => NormType::Inf,
        Value::Number(n) => NormType::from_p(n.as_f64().unwrap()).unwrap(),
        other => panic!("{other}"),
    }
}

fn layout(shapes: &[Vec<usize>]) -> ParamLayout {
    let names: Vec<String> = (0..shapes.len()).map(|i| format!("t{i}")).collect();
    let pairs: Vec<(&str, &[usize])> = names
        .iter()
        .zip(shapes)
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    ParamLayout::new(&pairs).unwrap()
}

fn f32s(v: &[Vec<f64>]) -> Vec<Vec<f32>> {
    v.iter()
        .map(|t| t.iter().map(|&x| x as f32).collect())
        .collect()
}

/// SGD with lr 1 from zero params: after one step the params are exactly
/// minus the processed gradients (0 - 1 * g), which exposes them.
fn sgd_probe(spec_grads: GradientConfig) -> OptimizerSpec {
    OptimizerSpec::sgd(SgdConfig {
        lr: 1.0,
        ..Default::default()
    })
    .with_gradients(spec_grads)
}

#[test]
fn clip_grad_norm_matches_pytorch_for_each_norm_type_and_magnitude() {
    let gpu = gpu();
    for case in load().norms {
        let layout = layout(&case.shapes);
        let mut params = ParamSet::new(gpu, &layout).unwrap();
        let g = GradientConfig {
            clip_norm: Some((case.max_norm, norm_type(&case.norm_type))),
            ..Default::default()
        };
        let mut opt = Optimizer::new(gpu, &sgd_probe(g), &params).unwrap();
        params.write_grads_all(gpu, &f32s(&case.grads)).unwrap();
        opt.step(gpu, &mut params).unwrap();
        let stats = opt.stats(gpu).unwrap();
        let norm = stats.norms[0] as f64;
        assert!(norm.is_finite(), "{}: norm {norm}", case.name);
        assert!(
            (norm - case.total_norm).abs() <= NORM_RTOL * case.total_norm,
            "{}: norm {norm} vs torch {}",
            case.name,
            case.total_norm
        );
        let got = params.read_all(gpu).unwrap();
        for (k, want) in case.clipped.iter().enumerate() {
            let neg: Vec<f64> = want.iter().map(|x| -x).collect();
            let r = worst_ratio(&got[k], &neg, GPU_RTOL);
            assert!(
                r <= 1.0,
                "{} tensor {k}: {:?} vs {:?}",
                case.name,
                got[k],
                neg
            );
        }
    }
}

#[test]
fn clip_grad_value_matches_pytorch() {
    let gpu = gpu();
    let case = load().value;
    let layout = layout(&case.shapes);
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    let g = GradientConfig {
        clip_value: Some(case.clip_value),
        ..Default::default()
    };
    let mut opt = Optimizer::new(gpu, &sgd_probe(g), &params).unwrap();
    params.write_grads_all(gpu, &f32s(&case.grads)).unwrap();
    opt.step(gpu, &mut params).unwrap();
    let got = params.read_all(gpu).unwrap();
    for (k, want) in case.clipped.iter().enumerate() {
        // A clamp and a negation are exact: bitwise equal to -(f32 of torch's value).
        let neg: Vec<f32> = want.iter().map(|&x| -(x as f32)).collect();
        assert_eq!(got[k], neg, "tensor {k}");
    }
}

#[test]
fn adam_with_clipping_follows_pytorch_and_the_reference() {
    let gpu = gpu();
    for tr in load().trajectories {
        let layout = layout(&tr.shapes);
        let nt = norm_type(&tr.norm_type);
        let mut spec = OptimizerSpec::adam(AdamConfig {
            lr: tr.lr,
            ..Default::default()
        })
        .group(ParamGroup::names(["t1", "t3"]));
        spec = if tr.per_group {
            spec.clip_by_group_norm(tr.max_norm, nt)
        } else {
            spec.clip_by_norm_type(tr.max_norm, nt)
        };
        if let Some(v) = tr.clip_value {
            spec = spec.clip_by_value(v);
        }
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 64).unwrap();
        params.write_all(gpu, &f32s(&tr.params0)).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        let mut reference = Reference::new(&spec, &layout).unwrap();
        let mut want_ref = tr.params0.clone();
        for (s, grads) in tr.grads.iter().enumerate() {
            params.write_grads_all(gpu, &f32s(grads)).unwrap();
            opt.step(gpu, &mut params).unwrap();
            reference.step(&mut want_ref, grads);
            let got = params.read_all(gpu).unwrap();
            for (k, want) in tr.params[s].iter().enumerate() {
                let r = worst_ratio(&got[k], want, GPU_RTOL);
                assert!(
                    r <= 1.0,
                    "{} step {} tensor {k}: gpu vs torch {r}",
                    tr.name,
                    s + 1
                );
                // The f64 reference agrees with torch to f64 rounding.
                for (a, b) in want_ref[k].iter().zip(want) {
                    assert!(
                        (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                        "{} reference {a} vs torch {b}",
                        tr.name
                    );
                }
            }
            let stats = opt.stats(gpu).unwrap();
            let n_scopes = tr.norms[s].len();
            for (g, want) in tr.norms[s].iter().enumerate() {
                let got = stats.norms[if n_scopes == 1 { 0 } else { g }] as f64;
                assert!(
                    (got - want).abs() <= NORM_RTOL * want,
                    "{} step {} norm {got} vs {want}",
                    tr.name,
                    s + 1
                );
                assert!((reference.norms[g] - want).abs() <= 1e-12 * want);
            }
        }
    }
}

#[test]
fn grad_scaler_with_planted_nan_and_inf_follows_pytorch() {
    let gpu = gpu();
    let case = load().scaler;
    let layout = layout(&case.shapes);
    let scaler = GradScalerConfig {
        init_scale: case.init_scale,
        growth_factor: case.growth_factor,
        backoff_factor: case.backoff_factor,
        growth_interval: case.growth_interval,
    };
    let spec = OptimizerSpec::adam(AdamConfig {
        lr: case.lr,
        ..Default::default()
    })
    .clip_by_global_norm(case.max_norm)
    .loss_scale(LossScale::Dynamic(scaler));
    assert_eq!(
        spec.gradients().nonfinite,
        NonFinite::Skip,
        "a dynamic scale skips non-finite steps"
    );
    // Chunks of 64 elements: the planted values sit in different chunks.
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 64).unwrap();
    params.write_all(gpu, &f32s(&case.params0)).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let mut skipped = 0;
    for (s, raw) in case.raw_grads.iter().enumerate() {
        let grads: Vec<Vec<f32>> = raw
            .iter()
            .map(|t| t.iter().map(|v| json_f64(v) as f32).collect())
            .collect();
        let before = params.read_all(gpu).unwrap();
        let before_state = opt.read_state(gpu, "exp_avg", "t3").unwrap();
        params.write_grads_all(gpu, &grads).unwrap();
        opt.step(gpu, &mut params).unwrap();
        let stats = opt.stats(gpu).unwrap();
        assert_eq!(stats.found_inf, case.found_inf[s], "step {}", s + 1);
        skipped += case.found_inf[s] as u64;
        assert_eq!(stats.skipped_steps, skipped);
        assert_eq!(
            stats.loss_scale as f64,
            case.scale_after[s],
            "scale after step {}",
            s + 1
        );
        let got = params.read_all(gpu).unwrap();
        if case.found_inf[s] {
            assert_eq!(
                got, before,
                "a skipped step leaves params bitwise unchanged"
            );
            assert_eq!(
                opt.read_state(gpu, "exp_avg", "t3").unwrap(),
                before_state,
                "and state"
            );
        }
        for (k, want) in case.params[s].iter().enumerate() {
            let r = worst_ratio(&got[k], want, GPU_RTOL);
            assert!(r <= 1.0, "step {} tensor {k}: {r}", s + 1);
        }
    }
    assert_eq!(opt.step_count(), 12, "host steps count every call");
}

fn mixed() -> ParamLayout {
    ParamLayout::new(&[
        ("empty", &[0][..]),
        ("odd", &[3][..]),
        ("straddle", &[300][..]),
        ("mat", &[5, 7][..]),
    ])
    .unwrap()
}

#[test]
fn nan_in_one_element_of_one_chunk_skips_the_whole_step() {
    let gpu = gpu();
    let layout = mixed();
    for mode in [NonFinite::Skip, NonFinite::Error] {
        let spec = OptimizerSpec::adam(AdamConfig {
            amsgrad: true,
            ..Default::default()
        })
        .nonfinite(mode);
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        let mut rng = Rng(1);
        let p0: Vec<Vec<f32>> = layout
            .tensors()
            .iter()
            .map(|t| rng.vec(t.numel as usize, 1.0))
            .collect();
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        let mut g: Vec<Vec<f32>> = layout
            .tensors()
            .iter()
            .map(|t| rng.vec(t.numel as usize, 1.0))
            .collect();
        g[2][250] = f32::NAN; // the third chunk of `straddle`
        params.write_grads_all(gpu, &g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        gpu.synchronize().unwrap();
        assert_eq!(
            params.read_all(gpu).unwrap(),
            p0,
            "{mode:?}: params untouched"
        );
        for s in ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] {
            assert!(
                opt.read_state(gpu, s, "straddle")
                    .unwrap()
                    .iter()
                    .all(|&x| x == 0.0),
                "{s}"
            );
        }
        match mode {
            NonFinite::Skip => {
                let st = opt.stats(gpu).unwrap();
                assert!(st.found_inf && st.skipped_steps == 1 && st.norms[0].is_infinite());
                // The next finite step is the device's first: bias corrections for t = 1.
                let mut reference = Reference::new(&spec, &layout).unwrap();
                let mut want: Vec<Vec<f64>> = p0
                    .iter()
                    .map(|t| t.iter().map(|&x| x as f64).collect())
                    .collect();
                g[2][250] = 0.5;
                params.write_grads_all(gpu, &g).unwrap();
                opt.step(gpu, &mut params).unwrap();
                let g64: Vec<Vec<f64>> = g
                    .iter()
                    .map(|t| t.iter().map(|&x| x as f64).collect())
                    .collect();
                reference.step(&mut want, &g64);
                assert_eq!(reference.step, 1);
                let got = params.read_all(gpu).unwrap();
                for k in 0..got.len() {
                    assert!(
                        worst_ratio(&got[k], &want[k], GPU_RTOL) <= 1.0,
                        "tensor {k}"
                    );
                }
            }
            _ => {
                // A later step reports the error once the host has learned of it
                // (the read completes asynchronously, so it may take a step or
                // two; those steps see the same NaN and are skipped too). The
                // reporting call itself changes nothing.
                let mut tries = 0;
                let e = loop {
                    tries += 1;
                    assert!(tries < 200, "the skip was never reported");
                    let before = opt.step_count();
                    match opt.step(gpu, &mut params) {
                        Err(e) => {
                            assert_eq!(opt.step_count(), before, "the reporting call took no step");
                            break e;
                        }
                        Ok(()) => gpu.synchronize().unwrap(),
                    }
                };
                assert_eq!(e.kind(), ErrorKind::NonFinite, "{e}");
                assert!(
                    matches!(e, Error::NonFinite { skipped, host_step } if skipped >= 1 && host_step >= 1),
                    "{e}"
                );
                assert!(e.to_string().contains("skipped"), "{e}");
                assert_eq!(params.read_all(gpu).unwrap(), p0);
            }
        }
    }
}

#[test]
fn huge_gradients_give_a_finite_norm_and_a_correct_clip() {
    let gpu = gpu();
    let layout = mixed();
    let spec = sgd_probe(GradientConfig {
        clip_norm: Some((1.0, NormType::L2)),
        ..Default::default()
    });
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
    let mut rng = Rng(2);
    let g: Vec<Vec<f32>> = layout
        .tensors()
        .iter()
        .map(|t| rng.vec(t.numel as usize, 1e20))
        .collect();
    params.write_grads_all(gpu, &g).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    opt.step(gpu, &mut params).unwrap();
    let st = opt.stats(gpu).unwrap();
    let g64: Vec<Vec<f64>> = g
        .iter()
        .map(|t| t.iter().map(|&x| x as f64).collect())
        .collect();
    let want_norm = g64.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    assert!(st.norms[0].is_finite());
    assert!(
        ((st.norms[0] as f64) - want_norm).abs() <= NORM_RTOL * want_norm,
        "{} vs {want_norm}",
        st.norms[0]
    );
    let coef = 1.0 / (want_norm + 1e-6);
    let got = params.read_all(gpu).unwrap();
    let clipped: Vec<f64> = g64.concat().iter().map(|x| -x * coef).collect();
    assert!(worst_ratio(&got.concat(), &clipped, GPU_RTOL) <= 1.0);
    let n: f64 = got
        .concat()
        .iter()
        .map(|&x| (x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((n - 1.0).abs() < 1e-5, "clipped norm {n} equals max_norm");
}

#[test]
fn zero_and_empty_gradients_have_norm_zero_and_coefficient_one() {
    let gpu = gpu();
    let layout = mixed();
    let spec = sgd_probe(GradientConfig {
        clip_norm: Some((1.0, NormType::L2)),
        nonfinite: NonFinite::Skip,
        ..Default::default()
    });
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
    params.write(gpu, "odd", &[1.0, 2.0, 3.0]).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    opt.step(gpu, &mut params).unwrap();
    let st = opt.stats(gpu).unwrap();
    assert_eq!(
        (
            st.norms[0],
            st.clip_coefs[0],
            st.found_inf,
            st.skipped_steps
        ),
        (0.0, 1.0, false, 0)
    );
    assert_eq!(params.read(gpu, "odd").unwrap(), vec![1.0, 2.0, 3.0]);
    let only_empty = ParamLayout::new(&[("e", &[0][..])]).unwrap();
    let mut p = ParamSet::new(gpu, &only_empty).unwrap();
    let mut o = Optimizer::new(gpu, &spec, &p).unwrap();
    o.step(gpu, &mut p).unwrap();
    assert_eq!(o.stats(gpu).unwrap().norms, vec![0.0]);
}

#[test]
fn clipping_is_bitwise_repeatable_and_creates_nothing_per_step() {
    let gpu = new_gpu();
    let layout = mixed();
    let spec = OptimizerSpec::adamw(AdamWConfig::default())
        .clip_by_global_norm(0.5)
        .clip_by_value(0.8)
        .loss_scale(LossScale::Dynamic(GradScalerConfig {
            growth_interval: 2,
            ..Default::default()
        }));
    let run = || {
        let mut params = ParamSet::with_chunk_elems(&gpu, &layout, 128).unwrap();
        let mut rng = Rng(3);
        params
            .write_all(
                &gpu,
                &layout
                    .tensors()
                    .iter()
                    .map(|t| rng.vec(t.numel as usize, 1.0))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let mut opt = Optimizer::new(&gpu, &spec, &params).unwrap();
        let mut counts = None;
        for i in 0..5 {
            let g: Vec<Vec<f32>> = layout
                .tensors()
                .iter()
                .map(|t| rng.vec(t.numel as usize, 3e4))
                .collect();
            params.write_grads_all(&gpu, &g).unwrap();
            opt.step(&gpu, &mut params).unwrap();
            if i == 0 {
                counts = Some(gpu.creation_counts());
            }
        }
        gpu.synchronize().unwrap();
        assert_eq!(
            Some(gpu.creation_counts()),
            counts,
            "no creation after the first step"
        );
        params
            .read_all(&gpu)
            .unwrap()
            .concat()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<u32>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn gradient_state_round_trips() {
    let gpu = gpu();
    let layout = mixed();
    let spec = OptimizerSpec::sgd(SgdConfig::default())
        .loss_scale(LossScale::Dynamic(GradScalerConfig::default()));
    let params = ParamSet::new(gpu, &layout).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let s = opt.gradient_state(gpu).unwrap().unwrap();
    assert_eq!((s.scale, s.skipped, s.growth_tracker), (65536.0, 0, 0));
    let restored = wgpu_optim::grad::GradientState {
        skipped: 3,
        scale: 128.0,
        growth_tracker: 7,
    };
    opt.set_gradient_state(gpu, &restored).unwrap();
    assert_eq!(opt.gradient_state(gpu).unwrap().unwrap(), restored);
    let plain = Optimizer::new(gpu, &OptimizerSpec::sgd(SgdConfig::default()), &params).unwrap();
    assert!(plain.control_buffer().is_none());
}

#[test]
fn bad_gradient_settings_are_refused_with_clear_errors() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &mixed()).unwrap();
    let base = || OptimizerSpec::sgd(SgdConfig::default());
    let cases: Vec<(OptimizerSpec, &str, &str)> = vec![
        (
            base().clip_by_global_norm(0.0),
            "max_norm",
            "Invalid max_norm: 0",
        ),
        (
            base().clip_by_global_norm(-1.0),
            "max_norm",
            "Invalid max_norm",
        ),
        (base().clip_by_global_norm(f64::NAN), "max_norm", "NaN"),
        (
            base().clip_by_value(0.0),
            "clip_value",
            "Invalid clip_value",
        ),
        (
            base().clip_by_value(f64::INFINITY),
            "clip_value",
            "Invalid clip_value",
        ),
        (
            base().loss_scale(LossScale::Static(0.0)),
            "loss_scale",
            "Invalid loss scale",
        ),
        (
            base().loss_scale(LossScale::Dynamic(GradScalerConfig {
                growth_factor: 1.0,
                ..Default::default()
            })),
            "growth_factor",
            "must be > 1.0",
        ),
        (
            base().loss_scale(LossScale::Dynamic(GradScalerConfig {
                backoff_factor: 1.5,
                ..Default::default()
            })),
            "backoff_factor",
            "must be < 1.0",
        ),
        (
            base().loss_scale(LossScale::Dynamic(GradScalerConfig {
                growth_interval: 0,
                ..Default::default()
            })),
            "growth_interval",
            "positive",
        ),
        (
            base().loss_scale(LossScale::Dynamic(GradScalerConfig {
                init_scale: f64::NAN,
                ..Default::default()
            })),
            "init_scale",
            "Invalid init_scale",
        ),
        (
            base().with_gradients(GradientConfig {
                loss_scale: Some(LossScale::Dynamic(GradScalerConfig::default())),
                ..Default::default()
            }),
            "nonfinite",
            "must skip",
        ),
    ];
    for (spec, field, words) in cases {
        let e = Optimizer::new(gpu, &spec, &params).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{msg}");
        assert!(
            msg.contains(&format!("field `{field}`")) && msg.contains(words),
            "{msg}"
        );
    }
    let e = NormType::from_p(3.0).unwrap_err();
    assert!(e.to_string().contains("1, 2 or inf"), "{e}");
    let mut plain = Optimizer::new(gpu, &base(), &params).unwrap();
    assert_eq!(
        plain.stats(gpu).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}

#[test]
fn static_loss_scale_divides_gradients_without_a_device_pass() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[("w", &[4][..])]).unwrap();
    let spec = sgd_probe(GradientConfig {
        loss_scale: Some(LossScale::Static(1024.0)),
        ..Default::default()
    });
    assert!(!spec.gradients().needs_device_pass());
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    params
        .write_grad(gpu, "w", &[1024.0, 2048.0, -512.0, 0.0])
        .unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    opt.step(gpu, &mut params).unwrap();
    assert_eq!(params.read(gpu, "w").unwrap(), vec![-1.0, -2.0, 0.5, 0.0]);
}

/// Issue 15: with `clip_by_value`, an Inf or NaN gradient was clamped to
/// +-clip_value before the finiteness test and the step was applied. The
/// test now looks at the unscaled gradient before any clamp.
#[test]
fn clip_by_value_does_not_hide_a_nonfinite_gradient_from_the_guard() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[("w", &[300][..])]).unwrap();
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        let spec = OptimizerSpec::sgd(SgdConfig {
            lr: 0.1,
            ..Default::default()
        })
        .clip_by_value(0.5)
        .nonfinite(NonFinite::Skip);
        let mut params = ParamSet::new(gpu, &layout).unwrap();
        let p0: Vec<f32> = (0..300).map(|i| i as f32 / 300.0).collect();
        params.write(gpu, "w", &p0).unwrap();
        let mut g = vec![0.25f32; 300];
        g[123] = bad;
        params.write_grad(gpu, "w", &g).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        let mut reference = Reference::new(&spec, &layout).unwrap();
        let mut want = vec![p0.iter().map(|&x| x as f64).collect::<Vec<f64>>()];
        reference.step(&mut want, &[g.iter().map(|&x| x as f64).collect()]);
        opt.step(gpu, &mut params).unwrap();
        assert_eq!(
            params.read(gpu, "w").unwrap(),
            p0,
            "{bad}: the step is skipped"
        );
        let s = opt.stats(gpu).unwrap();
        assert!(s.found_inf && s.skipped_steps == 1, "{bad}: {s:?}");
        assert_eq!(reference.skipped, 1, "{bad}: the reference skips too");
    }
}

/// Issue 15: a static loss scale of 1e-39 is finite in f64, but its inverse
/// (the factor the device multiplies by) is not finite in f32.
#[test]
fn loss_scales_whose_inverse_is_not_finite_in_f32_are_refused() {
    for s in [1e-39, 1e39, 0.0, -1.0, f64::NAN] {
        let g = GradientConfig {
            loss_scale: Some(LossScale::Static(s)),
            ..Default::default()
        };
        let e = g.validate().unwrap_err();
        assert!(e.to_string().contains("loss_scale"), "{s}: {e}");
    }
    for v in [1e39, f64::INFINITY] {
        let g = GradientConfig {
            clip_value: Some(v),
            ..Default::default()
        };
        assert!(g.validate().is_err(), "clip_value {v}");
    }
}

/// Issue 15: past 2^32 steps, the device's step after a skipped step was
/// computed from `t as u32`, so Adam's bias corrections restarted near t = 0.
/// The step count now reaches the device as 64 bits.
#[test]
fn a_skipped_step_past_two_to_the_32_keeps_the_right_step_count() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[("w", &[40][..])]).unwrap();
    for spec in [
        OptimizerSpec::adam(AdamConfig {
            lr: 0.01,
            ..Default::default()
        }),
        OptimizerSpec::adagrad(AdagradConfig {
            lr: 0.1,
            lr_decay: 1e-9,
            ..Default::default()
        }),
    ] {
        let spec = spec.nonfinite(NonFinite::Skip);
        let start = (1u64 << 32) + 5;
        let mut params = ParamSet::new(gpu, &layout).unwrap();
        let mut rng = Rng(4);
        let p0 = rng.vec(40, 1.0);
        params.write(gpu, "w", &p0).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        opt.set_step_count(start);
        let mut reference = Reference::new(&spec, &layout).unwrap();
        reference.step = start;
        reference.host_step = start;
        let mut want = vec![p0.iter().map(|&x| x as f64).collect::<Vec<f64>>()];
        for k in 0..3 {
            let mut g = rng.vec(40, 0.5);
            if k == 0 {
                g[7] = f32::NAN;
            }
            params.write_grad(gpu, "w", &g).unwrap();
            opt.step(gpu, &mut params).unwrap();
            reference.step(&mut want, &[g.iter().map(|&x| x as f64).collect()]);
        }
        assert_eq!(reference.skipped, 1);
        let got = params.read(gpu, "w").unwrap();
        let r = worst_ratio(&got, &want[0], GPU_RTOL);
        assert!(
            r <= 1.0,
            "{:?}: error/tolerance {r}",
            spec.algorithm().name()
        );
    }
    // And the count cannot wrap.
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    let mut opt = Optimizer::new(gpu, &OptimizerSpec::sgd(SgdConfig::default()), &params).unwrap();
    opt.set_step_count(u64::MAX);
    assert!(opt.step(gpu, &mut params).is_err());
    assert_eq!(opt.step_count(), u64::MAX);
}

/// The device counts skipped steps in u32: restoring a count it cannot hold
/// (and then count one more) is refused, not truncated.
#[test]
fn set_gradient_state_refuses_a_skip_count_the_device_cannot_hold() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &ParamLayout::new(&[("w", &[4][..])]).unwrap()).unwrap();
    let spec = OptimizerSpec::sgd(SgdConfig::default()).nonfinite(NonFinite::Skip);
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let before = opt.gradient_state(gpu).unwrap().unwrap();
    for skipped in [u32::MAX as u64, 1 << 40] {
        let s = wgpu_optim::grad::GradientState { skipped, ..before };
        let e = opt.set_gradient_state(gpu, &s).unwrap_err();
        assert!(e.to_string().contains("skipped"), "{e}");
    }
    assert_eq!(opt.gradient_state(gpu).unwrap().unwrap(), before);
}
