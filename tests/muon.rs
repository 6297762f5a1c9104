//! Muon on the device: the batched Newton-Schulz iteration against the f64
//! reference on tall, wide, square, empty and chunk-straddling matrices,
//! with param groups, every structural variant, the gradient pipeline,
//! skipped steps; bitwise repeatability; dispatches independent of the
//! number of matrices; errors that change nothing. (Goldens from
//! torch.optim.Muon itself: tests/golden.rs.)

mod common;

use common::{Rng, gpu, random_tensors, widen};
use wgpu_optim::grad::NonFinite;
use wgpu_optim::optim::*;
use wgpu_optim::reference::Reference;
use wgpu_optim::{Optimizer, ParamLayout, ParamSet};

/// Newton-Schulz in f32 against f64: each product sums up to n = 130
/// terms (relative error ~ n * 6e-8 ~ 1e-5 worst case, ~1e-6 typical), and
/// the quintic's coefficients (|a|, |b|, |c| up to 4.8) amplify it a few
/// times per iteration over 5 iterations before the iteration's own
/// contraction damps it; measured on lavapipe: about 1e-5 of the update's
/// largest entry (5.1e-6 at worst). The test compares each step's update (not the params,
/// whose size would hide it) with 5e-5 of the largest entry: a 10x margin
/// that still catches a wrong transposition, coefficient or norm (errors
/// of order 1).
const UPDATE_RTOL: f64 = 5e-5;

/// Params after 8 steps: f32 rounding of the param additions themselves.
const PARAM_RTOL: f64 = 2e-5;

/// Tall, wide, square, empty, a row, a column, and a matrix that straddles
/// the 512-element chunks of the tests.
fn matrices_layout() -> ParamLayout {
    ParamLayout::new(&[
        ("tall", &[130, 3][..]),
        ("wide", &[5, 70][..]),
        ("empty", &[0, 4][..]),
        ("square", &[9, 9][..]),
        ("row", &[1, 6][..]),
        ("col", &[7, 1][..]),
        ("straddle", &[20, 33][..]),
    ])
    .unwrap()
}

/// The largest error of `got` against `want` over the largest |want|.
fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| {
            if a.is_nan() != b.is_nan() {
                f64::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0f64, f64::max);
    if scale == 0.0 { err } else { err / scale }
}

/// `steps` steps of `spec` beside the f64 reference, each step's update
/// compared; returns the largest relative error seen.
fn follow(spec: &OptimizerSpec, layout: &ParamLayout, chunk: u64, steps: u64, seed: u64) -> f64 {
    let gpu = gpu();
    let mut params = ParamSet::with_chunk_elems(gpu, layout, chunk).unwrap();
    let mut rng = Rng(seed);
    let p0 = random_tensors(&mut rng, layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, spec, &params).unwrap();
    let mut reference = Reference::new(spec, layout).unwrap();
    let mut want = widen(&p0);
    let mut before = widen(&p0);
    let mut worst = 0.0f64;
    for step in 1..=steps {
        let g = random_tensors(&mut rng, layout, 0.5);
        params.write_grads_all(gpu, &g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        let prev_want = want.clone();
        reference.step(&mut want, &widen(&g));
        let got = widen(&params.read_all(gpu).unwrap());
        for (k, t) in layout.tensors().iter().enumerate() {
            let du: Vec<f64> = got[k].iter().zip(&before[k]).map(|(a, b)| a - b).collect();
            let dw: Vec<f64> = want[k]
                .iter()
                .zip(&prev_want[k])
                .map(|(a, b)| a - b)
                .collect();
            let e = relative_error(&du, &dw);
            assert!(
                e <= UPDATE_RTOL,
                "step {step} `{}`: update error {e:e} of its largest entry",
                t.name
            );
            worst = worst.max(e);
            let e = relative_error(&got[k], &want[k]);
            assert!(e <= PARAM_RTOL, "step {step} `{}`: params {e:e}", t.name);
        }
        // The next update starts from the device's params, as the
        // reference's starts from its own.
        before = got;
    }
    for t in layout.tensors() {
        let got: Vec<f64> = opt
            .read_state(gpu, "momentum_buffer", &t.name)
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect();
        let k = layout.index_of(&t.name).unwrap();
        let e = relative_error(&got, &reference.state["momentum_buffer"][k]);
        assert!(e <= PARAM_RTOL, "momentum_buffer `{}`: {e:e}", t.name);
    }
    worst
}

fn muon(c: MuonConfig) -> OptimizerSpec {
    OptimizerSpec::muon(c)
}

#[test]
fn defaults_match_the_reference_on_every_shape() {
    let spec = muon(MuonConfig {
        lr: 0.05,
        ..Default::default()
    });
    let layout = matrices_layout();
    let params = ParamSet::with_chunk_elems(gpu(), &layout, 512).unwrap();
    assert!(params.pieces("straddle").unwrap().len() >= 2, "straddles");
    let worst = follow(&spec, &layout, 512, 8, 1);
    eprintln!("muon defaults: worst update error {worst:e}");
}

#[test]
fn variants_and_groups_match_the_reference() {
    let cases = [
        MuonConfig {
            lr: 0.02,
            nesterov: false,
            momentum: 0.8,
            weight_decay: 0.0,
            ..Default::default()
        },
        MuonConfig {
            lr: 0.02,
            ns_steps: 1,
            adjust_lr_fn: AdjustLr::MatchRmsAdamW,
            maximize: true,
            l1: 0.01,
            ..Default::default()
        },
        MuonConfig {
            lr: 0.02,
            ns_steps: 0,
            adjust_lr_fn: AdjustLr::SpectralUnclamped,
            ..Default::default()
        },
        MuonConfig {
            lr: 0.02,
            ns_steps: 2,
            ns_coefficients: (2.0, -1.5, 0.5),
            eps: 1e-3,
            ..Default::default()
        },
    ];
    for c in cases {
        follow(&muon(c), &matrices_layout(), 512, 6, 2);
    }
    let groups = muon(MuonConfig {
        lr: 0.02,
        ..Default::default()
    })
    .group(ParamGroup::names(["tall", "row"]).lr(0.1).weight_decay(0.0))
    .group(ParamGroup::names(["square"]).set("momentum", 0.5).lr(0.0));
    follow(&groups, &matrices_layout(), 512, 6, 3);
}

#[test]
fn clipping_the_guard_and_skipped_steps_match_the_reference() {
    let gpu = gpu();
    let layout = matrices_layout();
    let spec = muon(MuonConfig {
        lr: 0.02,
        ..Default::default()
    })
    .clip_by_global_norm(0.5)
    .nonfinite(NonFinite::Skip);
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 512).unwrap();
    let mut rng = Rng(4);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let mut reference = Reference::new(&spec, &layout).unwrap();
    let mut want = widen(&p0);
    for step in 1..=6 {
        let mut g = random_tensors(&mut rng, &layout, 0.5);
        if step == 3 {
            g[3][4] = f32::INFINITY;
        }
        params.write_grads_all(gpu, &g).unwrap();
        let before = params.read_all(gpu).unwrap();
        opt.step(gpu, &mut params).unwrap();
        reference.step(&mut want, &widen(&g));
        let got = params.read_all(gpu).unwrap();
        if step == 3 {
            assert_eq!(got, before, "a skipped step changes nothing");
        }
        for (k, t) in layout.tensors().iter().enumerate() {
            let e = relative_error(&widen(&got)[k], &want[k]);
            assert!(e <= PARAM_RTOL, "step {step} `{}`: {e:e}", t.name);
        }
    }
    assert_eq!(reference.skipped, 1);
}

#[test]
fn a_non_finite_gradient_makes_its_matrix_nan_not_a_silent_update() {
    let gpu = gpu();
    let layout = matrices_layout();
    let spec = muon(MuonConfig::default());
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 512).unwrap();
    let mut rng = Rng(5);
    params
        .write_all(gpu, &random_tensors(&mut rng, &layout, 1.0))
        .unwrap();
    let mut g = random_tensors(&mut rng, &layout, 0.5);
    g[0][17] = f32::NAN;
    g[3][2] = f32::INFINITY;
    params.write_grads_all(gpu, &g).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    opt.step(gpu, &mut params).unwrap();
    let got = params.read_all(gpu).unwrap();
    assert!(got[0].iter().all(|x| x.is_nan()), "tall: all NaN");
    assert!(got[3].iter().all(|x| x.is_nan()), "square: all NaN");
    assert!(
        got[1].iter().all(|x| x.is_finite()),
        "wide untouched by them"
    );
}

#[test]
fn steps_are_bitwise_repeatable() {
    let gpu = gpu();
    let layout = matrices_layout();
    let spec = muon(MuonConfig {
        lr: 0.05,
        ..Default::default()
    });
    let run = || {
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 512).unwrap();
        let mut rng = Rng(6);
        params
            .write_all(gpu, &random_tensors(&mut rng, &layout, 1.0))
            .unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        for _ in 0..3 {
            let g = random_tensors(&mut rng, &layout, 0.5);
            params.write_grads_all(gpu, &g).unwrap();
            opt.step(gpu, &mut params).unwrap();
        }
        let bits: Vec<Vec<u32>> = params
            .read_all(gpu)
            .unwrap()
            .iter()
            .map(|t| t.iter().map(|x| x.to_bits()).collect())
            .collect();
        bits
    };
    assert_eq!(run(), run());
}

#[test]
fn dispatches_do_not_grow_with_the_number_of_matrices() {
    let gpu = gpu();
    let spec = muon(MuonConfig::default());
    let count = |n: usize| {
        let names: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
        let shapes: Vec<(&str, &[usize])> = names
            .iter()
            .map(|s| (s.as_str(), &[4usize, 6][..]))
            .collect();
        let layout = ParamLayout::new(&shapes).unwrap();
        let params = ParamSet::new(gpu, &layout).unwrap();
        Optimizer::new(gpu, &spec, &params)
            .unwrap()
            .dispatches_per_step()
    };
    // measure + reduce + apply, and 3 products per iteration.
    assert_eq!(count(1), 3 + 15);
    assert_eq!(count(40), count(1));
}

#[test]
fn tensors_that_are_not_matrices_are_refused_naming_them() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[("w", &[3, 4][..]), ("bias", &[4][..])]).unwrap();
    let params = ParamSet::new(gpu, &layout).unwrap();
    let err = Optimizer::new(gpu, &muon(MuonConfig::default()), &params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`bias`") && err.contains("[4]"), "{err}");
    assert!(err.contains("Muon only supports 2D parameters"), "{err}");
    let err = OptimizerSpec::muon(MuonConfig {
        ns_steps: 100,
        ..Default::default()
    })
    .algorithm()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.contains("ns_steps") && err.contains("100"), "{err}");
    let err = OptimizerSpec::muon(MuonConfig {
        ns_coefficients: (1.0, f64::NAN, 1.0),
        ..Default::default()
    })
    .algorithm()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.contains("ns_coefficients[1]"), "{err}");
}

#[test]
fn a_checkpoint_resumes_bitwise() {
    let spec = muon(MuonConfig {
        lr: 0.05,
        ..Default::default()
    });
    common::assert_resume_is_bitwise(&spec, &matrices_layout(), 512, 8);
}

/// Momentum stored in bf16 (`state_dtype`): against the reference, which
/// rounds the momentum to bf16 after every step as the device stores it.
/// The device rounds its f32 momentum, the reference its f64 one; where
/// the two straddle a bf16 rounding midpoint they land one bf16 step apart
/// (2^-8 relative), which the next steps' orthogonalized updates carry: the
/// params stay within 1e-4 of each tensor's largest entry (measured: 3e-7
/// on lavapipe), the momentum within one bf16 step of the reference's.
#[test]
fn bf16_momentum_follows_the_reference() {
    let gpu = gpu();
    let layout = matrices_layout();
    let spec = muon(MuonConfig {
        lr: 0.05,
        ..Default::default()
    })
    .state_dtype(StateDtype::Bf16);
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 512).unwrap();
    let mut rng = Rng(9);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    assert_eq!(opt.state_dtype("tall").unwrap(), StateDtype::Bf16);
    let mut reference = Reference::new(&spec, &layout).unwrap();
    reference.set_chunk_elems(&layout, 512).unwrap();
    let mut want = widen(&p0);
    let mut worst = 0.0f64;
    for _ in 0..6 {
        let g = random_tensors(&mut rng, &layout, 0.5);
        params.write_grads_all(gpu, &g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        reference.step(&mut want, &widen(&g));
        let got = widen(&params.read_all(gpu).unwrap());
        for (k, t) in layout.tensors().iter().enumerate() {
            let e = relative_error(&got[k], &want[k]);
            assert!(e <= 1e-4, "`{}`: {e:e}", t.name);
            worst = worst.max(e);
        }
    }
    eprintln!("muon bf16 momentum: worst param error {worst:e}");
    for (k, t) in layout.tensors().iter().enumerate() {
        let got = opt.read_state(gpu, "momentum_buffer", &t.name).unwrap();
        for (&a, &b) in got.iter().zip(&reference.state["momentum_buffer"][k]) {
            // One bf16 step at b's magnitude.
            let step = (b.abs().max(1e-30)).log2().floor().exp2() / 128.0;
            assert!((a as f64 - b).abs() <= step, "`{}`: {a} vs {b}", t.name);
        }
    }
    // One format for all of Muon's groups.
    let mixed = muon(MuonConfig::default())
        .state_dtype(StateDtype::Bf16)
        .group(ParamGroup::names(["tall"]).state_dtype(StateDtype::F32));
    let err = Optimizer::new(gpu, &mixed, &params)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("groups[1].state_dtype") && err.contains("one state format"),
        "{err}"
    );
}
