//! Param groups that run another algorithm (`ParamGroup::algorithm`): Muon
//! on the matrices with AdamW on the embeddings, norms and biases (the
//! recipe of Muon's users), and several kernels in one step. Each part
//! must do exactly what its algorithm does alone (bitwise, against
//! separate optimizers), while clipping, the non-finite guard and the loss
//! scale see every tensor of every part (against the f64 reference);
//! checkpoints, momentum, state access and errors know each tensor's
//! algorithm.

mod common;

use common::{Rng, gpu, random_tensors, widen, worst_ratio};
use wgpu_optim::checkpoint::{self, TrainingState};
use wgpu_optim::grad::NonFinite;
use wgpu_optim::optim::*;
use wgpu_optim::reference::Reference;
use wgpu_optim::{Optimizer, ParamLayout, ParamSet};

/// A small transformer-like block: an embedding, matrices, biases, norms,
/// a zero-length tensor.
fn model() -> ParamLayout {
    ParamLayout::new(&[
        ("emb", &[40, 8][..]),
        ("w1", &[8, 24][..]),
        ("b1", &[24][..]),
        ("norm", &[24][..]),
        ("w2", &[24, 8][..]),
        ("b2", &[8][..]),
        ("none", &[0][..]),
        ("w3", &[30, 20][..]),
    ])
    .unwrap()
}

const MATRICES: [&str; 3] = ["w1", "w2", "w3"];
const OTHERS: [&str; 5] = ["emb", "b1", "norm", "b2", "none"];

fn muon() -> MuonConfig {
    MuonConfig {
        lr: 0.02,
        weight_decay: 0.01,
        ..Default::default()
    }
}

fn adamw() -> AdamWConfig {
    AdamWConfig {
        lr: 3e-3,
        weight_decay: 0.05,
        ..Default::default()
    }
}

/// Muon on the matrices, AdamW on the rest.
fn muon_with_adamw() -> OptimizerSpec {
    OptimizerSpec::muon(muon()).group(ParamGroup::names(OTHERS).algorithm(adamw()))
}

/// The layout of `names` only, in `model()`'s order.
fn sub_layout(names: &[&str]) -> ParamLayout {
    let full = model();
    let shapes: Vec<(&str, &[usize])> = full
        .tensors()
        .iter()
        .filter(|t| names.contains(&t.name.as_str()))
        .map(|t| (t.name.as_str(), &t.shape[..]))
        .collect();
    ParamLayout::new(&shapes).unwrap()
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|t| t.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// Without a gradient pipeline, each part does exactly what its algorithm
/// does alone: bitwise the params and states of a Muon optimizer over the
/// matrices and an AdamW optimizer over the rest, each on its own
/// ParamSet.
#[test]
fn each_part_is_bitwise_its_algorithm_alone() {
    let gpu = gpu();
    let layout = model();
    let mut rng = Rng(11);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    let grads: Vec<Vec<Vec<f32>>> = (0..5)
        .map(|_| random_tensors(&mut rng, &layout, 0.5))
        .collect();
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, &muon_with_adamw(), &params).unwrap();
    assert_eq!(opt.algorithm_name(), "muon+adamw");
    assert_eq!(opt.num_groups(), 2);

    let pick = |all: &[Vec<f32>], names: &[&str]| -> Vec<Vec<f32>> {
        layout
            .tensors()
            .iter()
            .zip(all)
            .filter(|(t, _)| names.contains(&t.name.as_str()))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let alone = |names: &[&str], spec: OptimizerSpec| {
        let sub = sub_layout(names);
        let mut ps = ParamSet::new(gpu, &sub).unwrap();
        ps.write_all(gpu, &pick(&p0, names)).unwrap();
        let o = Optimizer::new(gpu, &spec, &ps).unwrap();
        (ps, o)
    };
    let (mut mp, mut mo) = alone(&MATRICES, OptimizerSpec::muon(muon()));
    let (mut ap, mut ao) = alone(&OTHERS, OptimizerSpec::adamw(adamw()));
    for g in &grads {
        params.write_grads_all(gpu, g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        mp.write_grads_all(gpu, &pick(g, &MATRICES)).unwrap();
        mo.step(gpu, &mut mp).unwrap();
        ap.write_grads_all(gpu, &pick(g, &OTHERS)).unwrap();
        ao.step(gpu, &mut ap).unwrap();
    }
    let got = params.read_all(gpu).unwrap();
    assert_eq!(
        bits(&pick(&got, &MATRICES)),
        bits(&mp.read_all(gpu).unwrap())
    );
    assert_eq!(bits(&pick(&got, &OTHERS)), bits(&ap.read_all(gpu).unwrap()));
    for n in MATRICES {
        assert_eq!(opt.tensor_state_names(n).unwrap(), ["momentum_buffer"]);
        let a = opt.read_state(gpu, "momentum_buffer", n).unwrap();
        let b = mo.read_state(gpu, "momentum_buffer", n).unwrap();
        assert_eq!(bits(&[a]), bits(&[b]), "{n}");
    }
    for n in OTHERS {
        assert_eq!(
            opt.tensor_state_names(n).unwrap(),
            ["exp_avg", "exp_avg_sq"]
        );
        for s in ["exp_avg", "exp_avg_sq"] {
            let a = opt.read_state(gpu, s, n).unwrap();
            let b = ao.read_state(gpu, s, n).unwrap();
            assert_eq!(bits(&[a]), bits(&[b]), "{n} {s}");
        }
    }
    assert_eq!(
        opt.state_names(),
        ["momentum_buffer", "exp_avg", "exp_avg_sq"]
    );
    // One step: Muon's passes and AdamW's one dispatch per chunk.
    assert_eq!(
        opt.dispatches_per_step(),
        mo.dispatches_per_step() + ao.dispatches_per_step()
    );
    // A state of another part's algorithm is refused, naming what the
    // tensor keeps.
    let err = opt
        .read_state(gpu, "exp_avg", "w1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("momentum_buffer") && err.contains("`w1`"),
        "{err}"
    );
}

/// Params within `rtol` of the reference (relative to each tensor's
/// largest entry, `worst_ratio`).
fn assert_near(got: &[Vec<f32>], want: &[Vec<f64>], rtol: f64, what: &str) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let r = worst_ratio(g, w, rtol);
        assert!(r <= 1.0, "{what}: tensor {k}: {r} x the tolerance");
    }
}

/// Global-norm clipping and the non-finite guard over every part: the norm
/// is one norm over all tensors, and a non-finite gradient in an AdamW
/// tensor skips the Muon matrices too. Chunks of 512 elements cut `w3`
/// across chunks. Tolerance 2e-5 of each tensor's largest entry: Muon's
/// f32 Newton-Schulz against f64 (tests/muon.rs: PARAM_RTOL) is the
/// larger of the two parts' errors.
#[test]
fn clipping_and_the_guard_see_every_part() {
    let gpu = gpu();
    let layout = model();
    let spec = muon_with_adamw()
        .clip_by_global_norm(0.3)
        .nonfinite(NonFinite::Skip);
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 512).unwrap();
    assert!(
        params.pieces("w3").unwrap().len() >= 2,
        "w3 straddles chunks"
    );
    let mut rng = Rng(12);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let mut reference = Reference::new(&spec, &layout).unwrap();
    let mut want = widen(&p0);
    for step in 1..=6 {
        let mut g = random_tensors(&mut rng, &layout, 0.5);
        if step == 3 {
            g[3][5] = f32::NAN; // `norm`, an AdamW tensor
        }
        params.write_grads_all(gpu, &g).unwrap();
        let before = params.read_all(gpu).unwrap();
        opt.step(gpu, &mut params).unwrap();
        reference.step(&mut want, &widen(&g));
        let got = params.read_all(gpu).unwrap();
        if step == 3 {
            assert_eq!(bits(&got), bits(&before), "a skipped step moves no part");
        }
        assert_near(&got, &want, 2e-5, &format!("step {step}"));
    }
    assert_eq!(reference.skipped, 1);
    let stats = opt.stats(gpu).unwrap();
    assert_eq!(stats.skipped_steps, 1);
    for (k, t) in layout.tensors().iter().enumerate() {
        for s in opt.tensor_state_names(&t.name).unwrap() {
            let got = opt.read_state(gpu, s, &t.name).unwrap();
            let r = worst_ratio(&got, &reference.state[s][k], 2e-5);
            assert!(r <= 1.0, "{s} of `{}`: {r}", t.name);
        }
    }
}

/// Four kernels in one step: AdamW with 8-bit states, LAMB (a trust-ratio
/// part whose blocks are numbered after AdamW's), SGD with momentum, and
/// AdamW with AMSGrad (the same algorithm with another switch is another
/// part). Each against the f64 reference, which rounds the states as the
/// device stores them; the 8-bit tolerance is tests/state_dtypes.rs's
/// (params within 0.02 of the tensor's largest magnitude after a few steps
/// of quantized moments), the others f32 rounding over 5 steps (2e-5).
#[test]
fn four_kernels_in_one_step_follow_the_reference() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[
        ("a", &[300][..]),
        ("b", &[700][..]),
        ("c", &[90][..]),
        ("d", &[5, 7][..]),
        ("e", &[1100][..]),
        ("f", &[3][..]),
    ])
    .unwrap();
    let spec = OptimizerSpec::adamw(adamw())
        .state_dtype(StateDtype::Blockwise8)
        .min_8bit_size(256)
        .group(
            ParamGroup::names(["b", "f"])
                .algorithm(LambConfig {
                    lr: 0.01,
                    ..Default::default()
                })
                .state_dtype(StateDtype::F32),
        )
        .group(
            ParamGroup::names(["c"])
                .algorithm(SgdConfig {
                    lr: 0.05,
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                })
                .state_dtype(StateDtype::F32),
        )
        .group(
            ParamGroup::names(["d"])
                .algorithm(AdamWConfig {
                    amsgrad: true,
                    ..adamw()
                })
                .lr(0.01)
                .state_dtype(StateDtype::F32),
        )
        .clip_by_global_norm(1.0);
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 1024).unwrap();
    let mut rng = Rng(13);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    assert_eq!(opt.algorithm_name(), "adamw+lamb+sgd+adamw");
    assert_eq!(opt.state_dtype("a").unwrap(), StateDtype::Blockwise8);
    assert_eq!(opt.state_dtype("b").unwrap(), StateDtype::F32);
    let mut reference = Reference::new(&spec, &layout).unwrap();
    reference.set_chunk_elems(&layout, 1024).unwrap();
    let mut want = widen(&p0);
    for _ in 0..5 {
        let g = random_tensors(&mut rng, &layout, 0.5);
        params.write_grads_all(gpu, &g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        reference.step(&mut want, &widen(&g));
    }
    let got = params.read_all(gpu).unwrap();
    for (k, t) in layout.tensors().iter().enumerate() {
        let eight = opt.state_dtype(&t.name).unwrap() == StateDtype::Blockwise8;
        let scale = want[k].iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let err = got[k]
            .iter()
            .zip(&want[k])
            .map(|(&a, b)| (a as f64 - b).abs())
            .fold(0.0f64, f64::max);
        let bound = if eight { 0.02 } else { 2e-5 } * scale.max(1e-30);
        assert!(err <= bound, "`{}`: {err:e} > {bound:e}", t.name);
    }
    assert_eq!(
        opt.tensor_state_names("d").unwrap(),
        ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    );
    assert_eq!(opt.tensor_state_names("c").unwrap(), ["momentum_buffer"]);
}

/// A checkpoint of a mixed optimizer resumes bitwise; an optimizer of
/// another mix refuses it and changes nothing.
#[test]
fn a_checkpoint_resumes_bitwise_and_another_mix_refuses_it() {
    let gpu = gpu();
    let layout = model();
    let spec = muon_with_adamw().clip_by_global_norm(0.5);
    let path = std::env::temp_dir().join(format!(
        "wgpu-optim-mixed-{}.safetensors",
        std::process::id()
    ));
    let mut rng = Rng(14);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    let grads: Vec<Vec<Vec<f32>>> = (0..6)
        .map(|_| random_tensors(&mut rng, &layout, 0.5))
        .collect();
    let fresh = |spec: &OptimizerSpec| {
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 512).unwrap();
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
    let (mut wp, mut wo) = fresh(&spec);
    run(&mut wp, &mut wo, 0..6);
    let (mut sp, mut so) = fresh(&spec);
    run(&mut sp, &mut so, 0..3);
    checkpoint::save(&path, gpu, &sp, &mut so, &TrainingState::default()).unwrap();
    let (mut rp, mut ro) = fresh(&spec);
    checkpoint::load(&path, gpu, &mut rp, &mut ro).unwrap();
    run(&mut rp, &mut ro, 3..6);
    assert_eq!(
        bits(&rp.read_all(gpu).unwrap()),
        bits(&wp.read_all(gpu).unwrap())
    );

    // The same groups with Lion instead of AdamW: refused, nothing changes.
    let lion = OptimizerSpec::muon(muon())
        .group(ParamGroup::names(OTHERS).algorithm(LionConfig::default()))
        .clip_by_global_norm(0.5);
    let (mut op, mut oo) = fresh(&lion);
    let before = bits(&op.read_all(gpu).unwrap());
    let err = checkpoint::load(&path, gpu, &mut op, &mut oo)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("muon+adamw") && err.contains("muon+lion"),
        "{err}"
    );
    assert_eq!(bits(&op.read_all(gpu).unwrap()), before);
    assert_eq!(oo.step_count(), 0);

    // The same names, states and groups, other kernels: the file's group 1
    // maximizes, the live group 1 does not (Adam and AdamW share names and
    // states too).
    let swapped = OptimizerSpec::muon(muon())
        .group(ParamGroup::names(["emb", "b1"]).algorithm(adamw()))
        .group(
            ParamGroup::names(["norm", "b2", "none"]).algorithm(AdamWConfig {
                maximize: true,
                ..adamw()
            }),
        )
        .clip_by_global_norm(0.5);
    let file_spec = OptimizerSpec::muon(muon())
        .group(ParamGroup::names(["emb", "b1"]).algorithm(AdamWConfig {
            maximize: true,
            ..adamw()
        }))
        .group(ParamGroup::names(["norm", "b2", "none"]).algorithm(adamw()))
        .clip_by_global_norm(0.5);
    let (mut fp, mut fo) = fresh(&file_spec);
    run(&mut fp, &mut fo, 0..2);
    checkpoint::save(&path, gpu, &fp, &mut fo, &TrainingState::default()).unwrap();
    let (mut op, mut oo) = fresh(&swapped);
    assert_eq!(oo.algorithm_name(), fo.algorithm_name());
    let err = checkpoint::load(&path, gpu, &mut op, &mut oo)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("param group 1") && err.contains("MAXIMIZE=1") && err.contains("MAXIMIZE=0"),
        "{err}"
    );
    // Same kernels, other tensors in each group.
    let moved = OptimizerSpec::muon(muon())
        .group(
            ParamGroup::names(["emb", "b1", "norm"]).algorithm(AdamWConfig {
                maximize: true,
                ..adamw()
            }),
        )
        .group(ParamGroup::names(["b2", "none"]).algorithm(adamw()))
        .clip_by_global_norm(0.5);
    let (mut op, mut oo) = fresh(&moved);
    let err = checkpoint::load(&path, gpu, &mut op, &mut oo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`norm`") && err.contains("group 2"), "{err}");
    assert_eq!(oo.step_count(), 0);
    std::fs::remove_file(&path).ok();
}

/// Cycling schedules set each group's own momentum: Muon's `momentum`,
/// AdamW's `beta1`; a group whose algorithm has none is an error that
/// changes nothing.
#[test]
fn momentum_is_each_algorithms_own() {
    let gpu = gpu();
    let layout = model();
    let params = ParamSet::new(gpu, &layout).unwrap();
    let mut opt = Optimizer::new(gpu, &muon_with_adamw(), &params).unwrap();
    opt.set_momentum(0.85).unwrap();
    assert_eq!(opt.group_config(0).unwrap().get("momentum"), Some(0.85));
    assert_eq!(opt.group_config(1).unwrap().get("beta1"), Some(0.85));
    let spec = OptimizerSpec::muon(muon())
        .group(ParamGroup::names(OTHERS).algorithm(AdagradConfig::default()));
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let err = opt.set_momentum(0.8).unwrap_err().to_string();
    assert!(
        err.contains("groups[1].momentum") && err.contains("adagrad"),
        "{err}"
    );
    assert_eq!(opt.group_config(0).unwrap().get("momentum"), Some(0.95));
}

/// Bad mixes are refused when the optimizer is built, naming the field.
#[test]
fn bad_mixes_are_refused_naming_the_field() {
    let gpu = gpu();
    let layout = model();
    let params = ParamSet::new(gpu, &layout).unwrap();
    let build = |spec: OptimizerSpec| Optimizer::new(gpu, &spec, &params).unwrap_err().to_string();
    // A 1-D tensor left to Muon.
    let err = build(
        OptimizerSpec::muon(muon()).group(ParamGroup::names(["emb", "b1"]).algorithm(adamw())),
    );
    assert!(
        err.contains("`norm`") && err.contains("ParamGroup::algorithm"),
        "{err}"
    );
    // The group's own algorithm is validated, its fields named under it.
    let err = build(muon_spec_with(AdamWConfig {
        lr: -1.0,
        ..adamw()
    }));
    assert!(err.contains("groups[1].algorithm.lr"), "{err}");
    // An override the group's algorithm does not have.
    let err = build(
        OptimizerSpec::muon(muon())
            .group(ParamGroup::names(OTHERS).algorithm(adamw()).momentum(0.9)),
    );
    assert!(
        err.contains("groups[1].momentum") && err.contains("adamw"),
        "{err}"
    );
    // Schedule-Free runs alone.
    let err = build(muon_spec_with(ScheduleFreeAdamWConfig::default()));
    assert!(
        err.contains("groups[1].algorithm") && err.contains("eval"),
        "{err}"
    );
    let err = build(
        OptimizerSpec::schedule_free_adamw(Default::default())
            .group(ParamGroup::names(OTHERS).algorithm(adamw())),
    );
    assert!(
        err.contains("algorithm") && err.contains("schedule_free_adamw"),
        "{err}"
    );
    // A state format the group's algorithm does not offer.
    let err = build(
        OptimizerSpec::muon(muon()).group(
            ParamGroup::names(OTHERS)
                .algorithm(RmsPropConfig {
                    centered: true,
                    ..Default::default()
                })
                .state_dtype(StateDtype::Bf16),
        ),
    );
    assert!(err.contains("groups[1].state_dtype"), "{err}");
    // A format the group inherits from the spec: the message names both.
    let err = build(
        OptimizerSpec::adamw(adamw())
            .state_dtype(StateDtype::Blockwise8)
            .group(ParamGroup::names(MATRICES).algorithm(muon())),
    );
    assert!(
        err.contains("state_dtype (inherited by groups[1])") && err.contains("muon"),
        "{err}"
    );
}

fn muon_spec_with(a: impl Into<Algorithm>) -> OptimizerSpec {
    OptimizerSpec::muon(muon()).group(ParamGroup::names(OTHERS).algorithm(a))
}

/// Muon as a group of an AdamW optimizer: its blocks are numbered after
/// AdamW's (its matrix table and work buffer do not start at 0), `w3` is cut
/// across chunks, and each group clips its own norm. Against the reference
/// (tolerance as above), params and states; then the per-tensor dispatch is
/// bitwise the fused one.
#[test]
fn muon_as_a_later_part_with_group_clipping_and_per_tensor_dispatch() {
    use wgpu_optim::grad::NormType;
    use wgpu_optim::optim::Dispatch;
    let gpu = gpu();
    let layout = model();
    let spec = OptimizerSpec::adamw(adamw())
        .group(ParamGroup::names(MATRICES).algorithm(muon()))
        .clip_by_group_norm(0.4, NormType::L2);
    let mut rng = Rng(15);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    let grads: Vec<Vec<Vec<f32>>> = (0..5)
        .map(|_| random_tensors(&mut rng, &layout, 0.5))
        .collect();
    let run = |mode: Dispatch| {
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 512).unwrap();
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::with_dispatch(gpu, &spec, &params, mode).unwrap();
        for g in &grads {
            params.write_grads_all(gpu, g).unwrap();
            opt.step(gpu, &mut params).unwrap();
        }
        (params, opt)
    };
    let (params, opt) = run(Dispatch::Fused);
    assert!(
        params.pieces("w3").unwrap().len() >= 2,
        "w3 straddles chunks"
    );
    assert_eq!(opt.algorithm_name(), "adamw+muon");
    let mut reference = Reference::new(&spec, &layout).unwrap();
    let mut want = widen(&p0);
    for g in &grads {
        reference.step(&mut want, &widen(g));
    }
    let got = params.read_all(gpu).unwrap();
    assert_near(&got, &want, 2e-5, "adamw+muon");
    for (k, t) in layout.tensors().iter().enumerate() {
        for s in opt.tensor_state_names(&t.name).unwrap() {
            let got = opt.read_state(gpu, s, &t.name).unwrap();
            let r = worst_ratio(&got, &reference.state[s][k], 2e-5);
            assert!(r <= 1.0, "{s} of `{}`: {r}", t.name);
        }
    }
    let (per, _) = run(Dispatch::PerTensor);
    assert_eq!(bits(&per.read_all(gpu).unwrap()), bits(&got));
}

/// A part with no tensors: every tensor in a group that runs AdamW leaves
/// Muon's base group empty; the step is bitwise AdamW alone.
#[test]
fn an_empty_part_does_nothing() {
    let gpu = gpu();
    let layout = model();
    let all: Vec<&str> = MATRICES.iter().chain(&OTHERS).copied().collect();
    let spec = OptimizerSpec::muon(muon()).group(ParamGroup::names(all).algorithm(adamw()));
    let mut rng = Rng(16);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    let g = random_tensors(&mut rng, &layout, 0.5);
    let run = |spec: &OptimizerSpec| {
        let mut params = ParamSet::new(gpu, &layout).unwrap();
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::new(gpu, spec, &params).unwrap();
        for _ in 0..3 {
            params.write_grads_all(gpu, &g).unwrap();
            opt.step(gpu, &mut params).unwrap();
        }
        bits(&params.read_all(gpu).unwrap())
    };
    assert_eq!(run(&spec), run(&OptimizerSpec::adamw(adamw())));
}
