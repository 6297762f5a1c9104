//! The fused kernels against the f64 reference on many configurations, with
//! zero-length, odd-length, multi-block and chunk-straddling tensors; plus the
//! engine's promises: bitwise repeatability, nothing created after the first
//! step, dispatches independent of the tensor count, and errors that change
//! nothing.

mod common;

use common::{Rng, gpu, new_gpu, random_tensors, widen, worst_ratio};
use wgpu_optim::optim::*;
use wgpu_optim::reference::Reference;
use wgpu_optim::{Optimizer, ParamLayout, ParamSet};

/// f32 on the device against f64 on the host: about ten roundings of 6e-8 per
/// element and step, 8 steps -> ~5e-6; 2e-5 leaves a 4x margin.
const GPU_RTOL: f64 = 2e-5;

/// Shapes: empty, scalar-like, odd, a tensor of 300 elements that straddles
/// 128-element chunks, one of 1030 elements that spans several blocks and
/// chunks, and a 2-D tensor.
fn mixed_layout() -> ParamLayout {
    ParamLayout::new(&[
        ("empty", &[0][..]),
        ("one", &[1][..]),
        ("odd", &[3][..]),
        ("straddle", &[300][..]),
        ("big", &[1030][..]),
        ("mat", &[5, 7][..]),
        ("bias", &[7][..]),
    ])
    .unwrap()
}

use common::cases::configs;

/// Every tensor of `params` against the f64 reference's `want`, within
/// `GPU_RTOL`; `what` names the case and step in the message.
fn assert_params_match(
    gpu: &wgpu_optim::Gpu,
    params: &ParamSet,
    layout: &ParamLayout,
    want: &[Vec<f64>],
    what: &str,
) {
    let got = params.read_all(gpu).unwrap();
    for (k, t) in layout.tensors().iter().enumerate() {
        let r = worst_ratio(&got[k], &want[k], GPU_RTOL);
        assert!(
            r <= 1.0,
            "{what} `{}`: error/tolerance {r}: {:?} vs {:?}",
            t.name,
            &got[k][..got[k].len().min(4)],
            &want[k][..want[k].len().min(4)],
        );
    }
}

/// Every state of `opt` against the reference's, within `GPU_RTOL`.
fn assert_states_match(
    gpu: &wgpu_optim::Gpu,
    opt: &Optimizer,
    reference: &Reference,
    layout: &ParamLayout,
    name: &str,
) {
    for (state, tensors) in &reference.state {
        for (k, t) in layout.tensors().iter().enumerate() {
            let got = opt.read_state(gpu, state, &t.name).unwrap();
            let r = worst_ratio(&got, &tensors[k], GPU_RTOL);
            assert!(r <= 1.0, "{name} state {state} `{}`: {r}", t.name);
        }
    }
}

/// A run of `spec` beside the f64 reference: random params from `rng`
/// written into `params`, then `steps` steps of random gradients (`edit`
/// may change those of step `s`), the params compared after every step and
/// every state at the end. Returns the ParamSet and the optimizer.
#[allow(clippy::too_many_arguments)]
fn follow_reference(
    gpu: &wgpu_optim::Gpu,
    spec: &OptimizerSpec,
    layout: &ParamLayout,
    mut params: ParamSet,
    rng: &mut Rng,
    steps: u64,
    name: &str,
    edit: impl Fn(u64, &mut [Vec<f32>]),
) -> (ParamSet, Optimizer) {
    let p0 = random_tensors(rng, layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, spec, &params).unwrap();
    let mut reference = Reference::new(spec, layout).unwrap();
    let mut want = widen(&p0);
    for step in 1..=steps {
        let mut g = random_tensors(rng, layout, 0.5);
        edit(step, &mut g);
        params.write_grads_all(gpu, &g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        reference.step(&mut want, &widen(&g));
        assert_params_match(gpu, &params, layout, &want, &format!("{name} step {step}"));
    }
    assert_states_match(gpu, &opt, &reference, layout, name);
    (params, opt)
}

/// One case of the table against the f64 reference: 8 steps on the mixed,
/// chunked layout, params and every state.
fn matches_reference(name: &str, spec: &OptimizerSpec) {
    let gpu = gpu();
    let layout = mixed_layout();
    let params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
    assert!(
        params.pieces("straddle").unwrap().len() >= 2,
        "straddles a chunk boundary"
    );
    let (_, opt) = follow_reference(gpu, spec, &layout, params, &mut Rng(7), 8, name, |_, _| {});
    assert_eq!(opt.step_count(), 8);
}

#[test]
fn the_case_macro_lists_every_case_of_the_table() {
    let table: Vec<&str> = configs().iter().map(|c| c.0).collect();
    assert_eq!(
        matches_reference_on_chunked_mixed_shapes::case_names(),
        table
    );
}

/// One test per case of the shared table (`tests/common/cases.rs`).
mod matches_reference_on_chunked_mixed_shapes {
    crate::optimizer_cases!(super::matches_reference);
}

/// One case of the table with the non-finite guard: steps 2, 3 and 6 see a
/// NaN or an infinity and are skipped on the device, so from step 2 on
/// every kernel recomputes its step-dependent scalars from the device's
/// step count (`after_skipped_steps`) and must still follow the reference,
/// which does not count skipped steps (PyTorch's `GradScaler` semantics).
fn matches_reference_across_skipped_steps(name: &str, spec: &OptimizerSpec) {
    let gpu = gpu();
    let layout = mixed_layout();
    let spec = spec.clone().nonfinite(wgpu_optim::grad::NonFinite::Skip);
    if refuses_skipping(name, &spec) {
        return;
    }
    let mut rng = Rng(17);
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let mut reference = Reference::new(&spec, &layout).unwrap();
    let mut want = widen(&p0);
    for step in 1..=9 {
        let mut g = random_tensors(&mut rng, &layout, 0.5);
        match step {
            2 => g[3][150] = f32::NAN,
            3 => g[5][0] = f32::INFINITY,
            6 => g[4][1029] = f32::NEG_INFINITY,
            _ => {}
        }
        params.write_grads_all(gpu, &g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        reference.step(&mut want, &widen(&g));
        assert_params_match(gpu, &params, &layout, &want, &format!("{name} step {step}"));
    }
    assert_eq!((reference.step, reference.skipped), (6, 3), "{name}");
    assert_eq!(opt.stats(gpu).unwrap().skipped_steps, 3, "{name}");
    assert_states_match(gpu, &opt, &reference, &layout, name);
}

/// Schedule-Free keeps its averaging state on the host, which a step
/// skipped on the device would leave ahead of the params: a spec with the
/// guard's skipping is an error naming `gradients.nonfinite` (checked here
/// instead of the skip), for both the optimizer and the reference.
fn refuses_skipping(name: &str, spec: &OptimizerSpec) -> bool {
    if !spec.algorithm().name().starts_with("schedule_free") {
        return false;
    }
    let gpu = gpu();
    let params = ParamSet::new(gpu, &mixed_layout()).unwrap();
    let e = Optimizer::new(gpu, spec, &params).unwrap_err();
    assert!(e.to_string().contains("gradients.nonfinite"), "{name}: {e}");
    assert!(Reference::new(spec, &mixed_layout()).is_err(), "{name}");
    true
}

/// One test per case of the shared table.
mod matches_reference_across_skipped_steps {
    crate::optimizer_cases!(super::matches_reference_across_skipped_steps);
}

/// One case of the table, resumed late (step 10^7, past f32's exact
/// integers at 2^24 only in the next case, and step 2^32 + 5): the first
/// step sees a NaN and is skipped, so the next ones recompute their
/// step-dependent scalars on the device in f32 from a large step count
/// (RAdam's `rho_t`, NAdam's `mu_product`, ADOPT's clip, ASGD's eta, the
/// bias corrections) and must still follow the f64 reference.
fn matches_reference_after_a_skip_at_a_late_step(name: &str, spec: &OptimizerSpec) {
    let gpu = gpu();
    let layout = mixed_layout();
    let spec = spec.clone().nonfinite(wgpu_optim::grad::NonFinite::Skip);
    if refuses_skipping(name, &spec) {
        return;
    }
    for start in [10_000_000u64, (1u64 << 32) + 5] {
        let mut rng = Rng(23);
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        let p0 = random_tensors(&mut rng, &layout, 1.0);
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        opt.set_step_count(start);
        let mut reference = Reference::new(&spec, &layout).unwrap();
        reference.step = start;
        reference.host_step = start;
        let mut want = widen(&p0);
        for k in 0..3 {
            let mut g = random_tensors(&mut rng, &layout, 0.5);
            if k == 0 {
                g[4][17] = f32::NAN;
            }
            params.write_grads_all(gpu, &g).unwrap();
            opt.step(gpu, &mut params).unwrap();
            reference.step(&mut want, &widen(&g));
        }
        assert_eq!(reference.skipped, 1, "{name}");
        let what = format!("{name} from step {start}");
        assert_params_match(gpu, &params, &layout, &want, &what);
    }
}

/// One test per case of the shared table.
mod matches_reference_after_a_skip_at_a_late_step {
    crate::optimizer_cases!(super::matches_reference_after_a_skip_at_a_late_step);
}

#[test]
fn group_with_zero_lr_is_untouched_and_others_move() {
    let gpu = gpu();
    let layout = mixed_layout();
    for (name, spec) in configs().into_iter().filter(|c| c.0.ends_with("groups")) {
        let mut rng = Rng(3);
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        let p0 = random_tensors(&mut rng, &layout, 1.0);
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        assert_eq!(opt.group_of("odd").unwrap(), 2);
        assert_eq!(opt.group_of("bias").unwrap(), 1);
        assert_eq!(opt.group_of("big").unwrap(), 1, "`b*` matches `big` too");
        assert_eq!(opt.group_of("mat").unwrap(), 0);
        for _ in 0..3 {
            params
                .write_grads_all(gpu, &random_tensors(&mut rng, &layout, 1.0))
                .unwrap();
            opt.step(gpu, &mut params).unwrap();
        }
        assert_eq!(
            params.read(gpu, "odd").unwrap(),
            p0[2],
            "{name}: lr = 0 group"
        );
        assert_ne!(
            params.read(gpu, "mat").unwrap(),
            p0[5],
            "{name}: base group moved"
        );
    }
}

#[test]
fn zero_grads_without_decay_leave_params_unchanged() {
    let gpu = gpu();
    let layout = mixed_layout();
    for (name, spec) in configs() {
        // Decay and L1 (and ASGD's `lambd`) move params without a gradient;
        // skip configs that use them.
        let groups = spec.resolve(&layout).unwrap().groups;
        if groups.iter().any(|g| {
            let h = g.base_hp();
            h.weight_decay != 0.0 || h.l1 != 0.0 || g.get("lambd").is_some_and(|l| l != 0.0)
        }) {
            continue;
        }
        let mut rng = Rng(11);
        let mut params = ParamSet::new(gpu, &layout).unwrap();
        let p0 = random_tensors(&mut rng, &layout, 1.0);
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        for _ in 0..3 {
            opt.step(gpu, &mut params).unwrap();
        }
        assert_eq!(params.read_all(gpu).unwrap(), p0, "{name}");
    }
}

#[test]
fn same_inputs_twice_give_bitwise_equal_results() {
    let gpu = gpu();
    let layout = mixed_layout();
    let spec = OptimizerSpec::adam(AdamConfig {
        amsgrad: true,
        weight_decay: 0.1,
        ..Default::default()
    });
    let run = || {
        let mut rng = Rng(5);
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        params
            .write_all(gpu, &random_tensors(&mut rng, &layout, 1.0))
            .unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        for _ in 0..5 {
            params
                .write_grads_all(gpu, &random_tensors(&mut rng, &layout, 1.0))
                .unwrap();
            opt.step(gpu, &mut params).unwrap();
        }
        let bits: Vec<u32> = params
            .read_all(gpu)
            .unwrap()
            .concat()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        bits
    };
    assert_eq!(run(), run());
}

#[test]
fn step_creates_nothing_after_the_first() {
    let gpu = new_gpu();
    let layout = mixed_layout();
    for (name, spec) in configs() {
        let mut params = ParamSet::with_chunk_elems(&gpu, &layout, 128).unwrap();
        let mut opt = Optimizer::new(&gpu, &spec, &params).unwrap();
        opt.step(&gpu, &mut params).unwrap();
        let before = gpu.creation_counts();
        for _ in 0..10 {
            opt.step(&gpu, &mut params).unwrap();
        }
        gpu.synchronize().unwrap();
        assert_eq!(gpu.creation_counts(), before, "{name}");
    }
    // A second optimizer of an existing variant reuses the cached pipeline.
    let params = ParamSet::new(&gpu, &layout).unwrap();
    let before = gpu.creation_counts().pipelines;
    Optimizer::new(&gpu, &configs()[4].1, &params).unwrap();
    assert_eq!(gpu.creation_counts().pipelines, before);
}

#[test]
fn dispatches_do_not_grow_with_the_number_of_tensors() {
    let gpu = gpu();
    let names: Vec<String> = (0..150).map(|i| format!("t{i}")).collect();
    let shapes: Vec<(&str, &[usize])> =
        names.iter().map(|n| (n.as_str(), &[37usize][..])).collect();
    let many = ParamLayout::new(&shapes).unwrap();
    let few = ParamLayout::new(&shapes[..3]).unwrap();
    // Adam: one dispatch per chunk; LAMB (per-tensor trust ratios): two per
    // chunk and one reduce over all tensors.
    let adam = OptimizerSpec::adam(AdamConfig::default());
    let lamb = OptimizerSpec::lamb(LambConfig::default());
    for (spec, per, extra) in [(&adam, 1, 0), (&lamb, 2, 1)] {
        for layout in [&many, &few] {
            let params = ParamSet::new(gpu, layout).unwrap();
            let opt = Optimizer::new(gpu, spec, &params).unwrap();
            assert_eq!(
                opt.dispatches_per_step(),
                per + extra,
                "{} tensors",
                layout.len()
            );
        }
        // Only chunks add dispatches: 150 tensors of 64 padded elements over
        // chunks of 1024 elements = 10 chunks.
        let params = ParamSet::with_chunk_elems(gpu, &many, 1024).unwrap();
        assert_eq!(params.num_chunks(), 10);
        let opt = Optimizer::new(gpu, spec, &params).unwrap();
        assert_eq!(opt.dispatches_per_step(), 10 * per + extra);
    }
}

#[test]
fn a_tensor_larger_than_the_binding_limit_is_split_and_updated() {
    let gpu = gpu();
    let max = gpu.max_binding_elems();
    // Just over one binding: the tensor needs two chunks whatever the device.
    let n = (max + 1000) as usize;
    let layout = ParamLayout::new(&[("huge", &[n][..])]).unwrap();
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    assert_eq!(params.num_chunks(), 2);
    let p0: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 1e-3).collect();
    params.write(gpu, "huge", &p0).unwrap();
    let g: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.5).collect();
    params.write_grad(gpu, "huge", &g).unwrap();
    let mut opt = Optimizer::new(
        gpu,
        &OptimizerSpec::sgd(SgdConfig {
            lr: 0.25,
            ..Default::default()
        }),
        &params,
    )
    .unwrap();
    opt.step(gpu, &mut params).unwrap();
    let got = params.read(gpu, "huge").unwrap();
    for i in (0..n)
        .step_by(9973)
        .chain([max as usize - 1, max as usize, n - 1])
    {
        // p - 0.25 * g with g a multiple of 0.5: the product is exact in f32,
        // so one rounding of the subtraction, the same on device and host.
        assert_eq!(got[i], p0[i] - 0.25 * g[i], "element {i}");
    }
}

#[test]
fn user_kernels_can_write_gradients_in_place() {
    let gpu = gpu();
    let layout = mixed_layout();
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
    // "Backward pass": a device buffer copied into the grads at the places
    // `pieces` names, as a user kernel would write them.
    let g: Vec<f32> = (0..300).map(|i| i as f32 / 300.0).collect();
    let src = wgpu::util::DeviceExt::create_buffer_init(
        gpu.device(),
        &wgpu::util::BufferInitDescriptor {
            label: Some("user grads"),
            contents: bytemuck::cast_slice(&g),
            usage: wgpu::BufferUsages::COPY_SRC,
        },
    );
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    for p in params.pieces("straddle").unwrap() {
        enc.copy_buffer_to_buffer(
            &src,
            p.tensor_offset * 4,
            &params.grad_buffers()[p.chunk],
            p.chunk_offset * 4,
            p.len * 4,
        );
    }
    gpu.queue().submit([enc.finish()]);
    assert_eq!(params.read_grad(gpu, "straddle").unwrap(), g);
    let mut opt = Optimizer::new(
        gpu,
        &OptimizerSpec::sgd(SgdConfig {
            lr: 1.0,
            ..Default::default()
        }),
        &params,
    )
    .unwrap();
    opt.step(gpu, &mut params).unwrap();
    let got = params.read(gpu, "straddle").unwrap();
    assert!(got.iter().zip(&g).all(|(p, g)| *p == -g));
}

#[test]
fn zero_grads_clears_on_the_device() {
    let gpu = gpu();
    let layout = mixed_layout();
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
    params.write_grad(gpu, "big", &vec![1.0; 1030]).unwrap();
    params.zero_grads(gpu).unwrap();
    assert_eq!(params.read_grad(gpu, "big").unwrap(), vec![0.0; 1030]);
}

#[test]
fn per_tensor_dispatch_is_bitwise_equal_to_fused() {
    let spec = OptimizerSpec::rmsprop(RmsPropConfig {
        centered: true,
        momentum: 0.9,
        ..Default::default()
    });
    fused_equals_per_tensor(&spec, 1, 0);
}

/// LAMB's three passes (measure, reduce, apply): two dispatches per piece
/// or chunk and one reduce, the same bits either way.
#[test]
fn per_tensor_dispatch_of_a_trust_ratio_optimizer_is_bitwise_equal_to_fused() {
    let spec = common::cases::case("lamb_wd_clamp_debias_maximize_l1_groups");
    fused_equals_per_tensor(&spec, 2, 1);
}

/// Fused and per-tensor dispatch of `spec` give the same bits; each records
/// `per` dispatches per table (chunk or piece) plus `extra`.
fn fused_equals_per_tensor(spec: &OptimizerSpec, per: usize, extra: usize) {
    let gpu = gpu();
    let layout = mixed_layout();
    let run = |mode: Dispatch| {
        let mut rng = Rng(9);
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        params
            .write_all(gpu, &random_tensors(&mut rng, &layout, 1.0))
            .unwrap();
        let mut opt = Optimizer::with_dispatch(gpu, spec, &params, mode).unwrap();
        for _ in 0..4 {
            params
                .write_grads_all(gpu, &random_tensors(&mut rng, &layout, 1.0))
                .unwrap();
            opt.step(gpu, &mut params).unwrap();
        }
        let bits: Vec<u32> = params
            .read_all(gpu)
            .unwrap()
            .concat()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        (bits, opt.dispatches_per_step())
    };
    let (fused, n_fused) = run(Dispatch::Fused);
    let (unfused, n_unfused) = run(Dispatch::PerTensor);
    assert_eq!(fused, unfused);
    let pieces: usize = layout
        .tensors()
        .iter()
        .map(|t| {
            ParamSet::with_chunk_elems(gpu, &layout, 128)
                .unwrap()
                .pieces(&t.name)
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(
        n_unfused,
        per * pieces + extra,
        "per dispatches per non-empty tensor piece"
    );
    assert_eq!(
        n_fused,
        per * ParamSet::with_chunk_elems(gpu, &layout, 128)
            .unwrap()
            .num_chunks()
            + extra
    );
}

/// PyTorch lets a param group override any hyperparameter; so does the
/// engine, still in one dispatch: each group's row carries its own values.
#[test]
fn every_hyperparameter_can_differ_per_group_and_matches_the_reference() {
    let gpu = gpu();
    let layout = mixed_layout();
    let cases = vec![
        (
            "adam_betas_eps",
            OptimizerSpec::adam(AdamConfig {
                lr: 0.01,
                amsgrad: true,
                ..Default::default()
            })
            .group(
                ParamGroup::matching("b*")
                    .betas(0.5, 0.9)
                    .eps(1e-3)
                    .lr(0.02),
            ),
        ),
        (
            "sgd_momentum_dampening",
            OptimizerSpec::sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                ..Default::default()
            })
            .group(
                ParamGroup::names(["mat", "odd"])
                    .momentum(0.5)
                    .set("dampening", 0.25),
            ),
        ),
        (
            "rmsprop_alpha_momentum",
            OptimizerSpec::rmsprop(RmsPropConfig {
                momentum: 0.9,
                centered: true,
                ..Default::default()
            })
            .group(ParamGroup::matching("b*").set("alpha", 0.8).momentum(0.3)),
        ),
        (
            "adadelta_rho",
            OptimizerSpec::adadelta(AdadeltaConfig::default())
                .group(ParamGroup::matching("*t*").set("rho", 0.5).eps(1e-4)),
        ),
        (
            "adagrad_lr_decay_initial_accumulator",
            OptimizerSpec::adagrad(AdagradConfig {
                lr: 0.1,
                ..Default::default()
            })
            .group(
                ParamGroup::matching("b*")
                    .set("lr_decay", 0.1)
                    .set("initial_accumulator_value", 0.5),
            ),
        ),
        (
            "nadam_momentum_decay_betas",
            OptimizerSpec::nadam(NAdamConfig::default()).group(
                ParamGroup::matching("b*")
                    .set("momentum_decay", 0.02)
                    .betas(0.8, 0.99),
            ),
        ),
        (
            // Both groups rectify from step 6 on (rho_t > 5), with their own betas.
            "radam_betas",
            OptimizerSpec::radam(RAdamConfig {
                lr: 0.01,
                ..Default::default()
            })
            .group(ParamGroup::matching("b*").betas(0.8, 0.9)),
        ),
        (
            "asgd_lambd_alpha_t0",
            OptimizerSpec::asgd(AsgdConfig::default()).group(
                ParamGroup::matching("b*")
                    .set("lambd", 0.01)
                    .set("alpha", 0.5)
                    .set("t0", 2.0),
            ),
        ),
        (
            "rprop_etas_step_sizes",
            OptimizerSpec::rprop(RpropConfig::default()).group(
                ParamGroup::matching("b*")
                    .set("etaminus", 0.2)
                    .set("etaplus", 1.4)
                    .set("step_size_min", 1e-3)
                    .set("step_size_max", 0.005),
            ),
        ),
        (
            "lion_betas",
            OptimizerSpec::lion(LionConfig::default())
                .group(ParamGroup::matching("b*").betas(0.5, 0.9).lr(1e-3)),
        ),
        (
            "adopt_betas_eps",
            OptimizerSpec::adopt(AdoptConfig::default())
                .group(ParamGroup::matching("b*").betas(0.8, 0.95).eps(1e-4)),
        ),
        (
            "lamb_clamp_betas",
            OptimizerSpec::lamb(LambConfig {
                lr: 0.01,
                ..Default::default()
            })
            .group(
                ParamGroup::matching("b*")
                    .betas(0.8, 0.99)
                    .set("clamp_value", 0.3),
            ),
        ),
        (
            "lars_trust_momentum_mask",
            OptimizerSpec::lars(LarsConfig::default())
                .group(
                    ParamGroup::matching("b*")
                        .set("trust_coefficient", 0.01)
                        .set("momentum", 0.5),
                )
                .group(ParamGroup::names(["mat"]).set("trust_ratio_mask", 0.0)),
        ),
    ];
    for (name, spec) in cases {
        let params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        let (_, opt) = follow_reference(
            gpu,
            &spec,
            &layout,
            params,
            &mut Rng(21),
            6,
            name,
            |_, _| {},
        );
        // The overridden group really runs with its own values.
        let g1 = opt.group_config(1).unwrap();
        assert_ne!(g1, opt.group_config(0).unwrap(), "{name}");
    }
}

#[test]
fn a_group_override_the_optimizer_lacks_is_an_error_naming_it() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &mixed_layout()).unwrap();
    let spec =
        OptimizerSpec::sgd(SgdConfig::default()).group(ParamGroup::matching("b*").betas(0.9, 0.99));
    let e = Optimizer::new(gpu, &spec, &params).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("groups[1].beta1"), "{text}");
    assert!(text.contains("sgd has no hyperparameter `beta1`"), "{text}");
}

#[test]
fn a_group_override_that_changes_the_variant_is_refused() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &mixed_layout()).unwrap();
    // Momentum 0 in one group would need a kernel without the buffer.
    let spec = OptimizerSpec::sgd(SgdConfig {
        momentum: 0.9,
        ..Default::default()
    })
    .group(ParamGroup::matching("b*").momentum(0.0));
    let text = Optimizer::new(gpu, &spec, &params).unwrap_err().to_string();
    assert!(text.contains("param group 1 would change"), "{text}");
    // An invalid value names the group's field.
    let spec = OptimizerSpec::adam(AdamConfig::default())
        .group(ParamGroup::matching("b*").betas(1.5, 0.9));
    let text = Optimizer::new(gpu, &spec, &params).unwrap_err().to_string();
    assert!(
        text.contains("groups[1].beta1") && text.contains("Invalid beta parameter at index 0: 1.5"),
        "{text}"
    );
}

#[test]
fn a_group_naming_a_missing_tensor_is_an_error_naming_it() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &mixed_layout()).unwrap();
    let spec = OptimizerSpec::adam(AdamConfig::default())
        .group(ParamGroup::names(["mat", "typo"]).lr(0.1));
    let text = Optimizer::new(gpu, &spec, &params).unwrap_err().to_string();
    assert!(text.contains("`typo`"), "{text}");
}

#[test]
fn set_hyperparameter_changes_one_group_and_refuses_what_would_change_the_kernel() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &mixed_layout()).unwrap();
    let spec = OptimizerSpec::adam(AdamConfig::default()).group(ParamGroup::matching("b*"));
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    opt.set_hyperparameter(1, "beta2", 0.95).unwrap();
    assert_eq!(opt.group_config(1).unwrap().get("beta2"), Some(0.95));
    assert_eq!(opt.group_config(0).unwrap().get("beta2"), Some(0.999));
    let before = opt.group_config(1).unwrap().clone();
    assert!(opt.set_hyperparameter(1, "beta2", 1.0).is_err());
    assert!(opt.set_hyperparameter(1, "momentum", 0.5).is_err());
    assert!(opt.set_hyperparameter(7, "lr", 0.5).is_err());
    assert_eq!(opt.group_config(1).unwrap(), &before, "nothing changed");
}

/// LARS scales each tensor by its own ratio: two tensors with the same
/// gradients, one with 10x the params, move 10x as far (momentum 0, no
/// decay: the step is -lr * trust_coefficient * |p| / |g| * g).
#[test]
fn lars_scales_each_tensor_by_its_own_trust_ratio() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[("small", &[300][..]), ("large", &[300][..])]).unwrap();
    let mut rng = Rng(3);
    let p: Vec<f32> = rng.vec(300, 1.0);
    let g: Vec<f32> = rng.vec(300, 1.0);
    let large: Vec<f32> = p.iter().map(|x| 10.0 * x).collect();
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    params.write_all(gpu, &[p.clone(), large.clone()]).unwrap();
    params
        .write_grads_all(gpu, &[g.clone(), g.clone()])
        .unwrap();
    let spec = OptimizerSpec::lars(LarsConfig {
        momentum: 0.0,
        ..Default::default()
    });
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    opt.step(gpu, &mut params).unwrap();
    let got = params.read_all(gpu).unwrap();
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let ratio = 1e-3 * norm(&p) / norm(&g);
    for i in 0..300 {
        let small_step = got[0][i] as f64 - p[i] as f64;
        let large_step = got[1][i] as f64 - large[i] as f64;
        // The new f32 param is rounded once (half an ulp of |p|, 2 ulps
        // allowed) and the f32 ratio carries ~1e-6 relative (1e-4 allowed).
        let want = -ratio * g[i] as f64;
        let ulps = |x: f32| 2.0 * f32::EPSILON as f64 * (x as f64).abs();
        assert!(
            (small_step - want).abs() <= ulps(p[i]) + 1e-4 * want.abs(),
            "{i}"
        );
        assert!(
            (large_step - 10.0 * want).abs() <= ulps(large[i]) + 1e-3 * want.abs(),
            "{i}"
        );
    }
}

/// Schedule-Free's eval and train swaps against the reference, in the
/// middle of a run: eval() gives x, train() gives y back (within f32
/// rounding of the two lerps), and the run continues on the reference's
/// trajectory; a step in eval mode is an error that changes nothing.
#[test]
fn schedule_free_eval_and_train_swap_on_the_device() {
    let gpu = gpu();
    let layout = mixed_layout();
    for name in [
        "schedule_free_adamw_warmup_wd_r_maximize_l1_groups",
        "schedule_free_sgd_warmup_wd_maximize_l1_groups",
    ] {
        let spec = common::cases::case(name);
        let mut rng = Rng(5);
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        let p0 = random_tensors(&mut rng, &layout, 1.0);
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        let mut reference = Reference::new(&spec, &layout).unwrap();
        let mut want = widen(&p0);
        // Before the first step there is no z: both swaps leave the params.
        opt.eval(gpu, &mut params).unwrap();
        assert!(opt.is_eval_mode());
        assert_eq!(
            params.read_all(gpu).unwrap(),
            p0,
            "{name}: eval before step 1"
        );
        opt.train(gpu, &mut params).unwrap();
        for step in 1..=6 {
            let g = random_tensors(&mut rng, &layout, 0.5);
            params.write_grads_all(gpu, &g).unwrap();
            opt.step(gpu, &mut params).unwrap();
            reference.step(&mut want, &widen(&g));
            if step == 3 || step == 6 {
                opt.eval(gpu, &mut params).unwrap();
                opt.eval(gpu, &mut params).unwrap(); // already in eval mode: no move
                reference.swap(&mut want, true);
                assert_params_match(gpu, &params, &layout, &want, &format!("{name} x {step}"));
                let before = params.read_all(gpu).unwrap();
                let e = opt.step(gpu, &mut params).unwrap_err();
                assert!(e.to_string().contains("train mode"), "{e}");
                assert_eq!(opt.step_count(), step);
                assert_eq!(
                    params.read_all(gpu).unwrap(),
                    before,
                    "{name}: refused step"
                );
                opt.train(gpu, &mut params).unwrap();
                reference.swap(&mut want, false);
                assert_params_match(gpu, &params, &layout, &want, &format!("{name} y {step}"));
            }
        }
        assert_states_match(gpu, &opt, &reference, &layout, name);
    }
    // Optimizers without an eval mode say so.
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    let mut adam =
        Optimizer::new(gpu, &OptimizerSpec::adam(AdamConfig::default()), &params).unwrap();
    let e = adam.eval(gpu, &mut params).unwrap_err();
    assert!(e.to_string().contains("no eval mode"), "{e}");
    assert!(!adam.is_eval_mode());
}

/// The trust-ratio passes at sizes where every invocation of the measure
/// pass's tree holds data (blocks of 1024) and the reduce pass loops over
/// more than 256 blocks of one tensor (300,000 elements: 293 blocks), with
/// the default chunks: LAMB and LARS against the f64 reference.
#[test]
fn trust_ratios_match_the_reference_on_large_tensors() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[
        ("a", &[1030][..]),
        ("b", &[5000][..]),
        ("c", &[300, 1000][..]),
        ("d", &[3][..]),
    ])
    .unwrap();
    for name in [
        "lamb",
        "lamb_wd_clamp_debias_maximize_l1_groups",
        "lars_nesterov_wd_eps_maximize_l1_groups_mask",
    ] {
        // The table's groups name tensors of the mixed layout; take the
        // case's config over this layout with one group of its own.
        let spec = common::cases::case(name);
        let spec =
            OptimizerSpec::new(spec.algorithm().clone()).group(ParamGroup::names(["a"]).lr(0.003));
        let params = ParamSet::new(gpu, &layout).unwrap();
        follow_reference(
            gpu,
            &spec,
            &layout,
            params,
            &mut Rng(31),
            7,
            name,
            |_, _| {},
        );
    }
}

/// Without the non-finite guard, a NaN gradient in one tensor makes that
/// tensor's norms and trust ratio NaN, so all of it becomes NaN (as
/// torch-optimizer's LAMB does), never a finite ratio of its finite part;
/// the other tensors go on as the reference says.
#[test]
fn a_nan_poisons_its_tensors_trust_ratio_and_nothing_else() {
    let gpu = gpu();
    let layout = mixed_layout();
    for name in ["lamb", "lars"] {
        let spec = common::cases::case(name);
        let params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        let (params, _) = follow_reference(
            gpu,
            &spec,
            &layout,
            params,
            &mut Rng(37),
            // The NaN's step last: once a tensor's params are NaN, WGSL's
            // sign(NaN) in the L1 term is not the reference's 0.
            2,
            name,
            |s, g| {
                if s == 2 {
                    g[3][150] = f32::NAN; // "straddle", in its second chunk
                }
            },
        );
        let straddle = params.read(gpu, "straddle").unwrap();
        assert!(straddle.iter().all(|x| x.is_nan()), "{name}: {straddle:?}");
        let big = params.read(gpu, "big").unwrap();
        assert!(big.iter().all(|x| x.is_finite()), "{name}");
    }
}

/// A weight decay and an l1 that are zero in every group are compiled out
/// of the kernel; set later (here after two steps, on one group), the next
/// step builds the pipelines with them and the run follows the reference
/// as if they had been there from the start (bitwise oracle of the
/// compiled-out case: tests/bitwise_trajectory.rs).
#[test]
fn penalty_terms_set_after_the_build_take_effect() {
    let gpu = gpu();
    let layout = mixed_layout();
    for spec in [
        OptimizerSpec::adam(AdamConfig::default()).group(ParamGroup::names(["bias"])),
        OptimizerSpec::adamw(AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        })
        .group(ParamGroup::names(["bias"])),
        OptimizerSpec::lamb(LambConfig::default()).group(ParamGroup::names(["bias"])),
        OptimizerSpec::schedule_free_sgd(ScheduleFreeSgdConfig::default())
            .group(ParamGroup::names(["bias"])),
    ] {
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, 128).unwrap();
        let mut rng = Rng(21);
        let p0 = random_tensors(&mut rng, &layout, 1.0);
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        let mut reference = Reference::new(&spec, &layout).unwrap();
        let mut want = widen(&p0);
        let name = spec.algorithm().name();
        for step in 1..=5u64 {
            if step == 3 {
                for (g, hp, v) in [(1, "weight_decay", 0.1), (0, "l1", 0.01)] {
                    opt.set_hyperparameter(g, hp, v).unwrap();
                    reference.set_hyperparameter(g, hp, v);
                }
            }
            let g = random_tensors(&mut rng, &layout, 0.5);
            params.write_grads_all(gpu, &g).unwrap();
            opt.step(gpu, &mut params).unwrap();
            reference.step(&mut want, &widen(&g));
            assert_params_match(gpu, &params, &layout, &want, &format!("{name} step {step}"));
        }
    }
}
