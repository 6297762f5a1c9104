//! Bad input gets a clear error that names the field, the value and what is
//! allowed, and changes nothing on the GPU. Error cases are data.

mod common;

use common::{gpu, new_gpu};
use wgpu_optim::optim::*;
use wgpu_optim::{Error, ErrorKind, Optimizer, ParamLayout, ParamSet};

fn layout() -> ParamLayout {
    ParamLayout::new(&[("w", &[4, 3][..]), ("b", &[3][..])]).unwrap()
}

/// (spec, field named, words of PyTorch's message)
fn invalid_configs() -> Vec<(OptimizerSpec, &'static str, &'static str)> {
    let nan = f64::NAN;
    vec![
        (
            OptimizerSpec::schedule_free_sgd(ScheduleFreeSgdConfig {
                momentum: 1.0,
                ..Default::default()
            }),
            "momentum",
            "Momentum must be between 0 and 1 exclusive: 1",
        ),
        (
            OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig {
                warmup_steps: 2.5,
                ..Default::default()
            }),
            "warmup_steps",
            "Invalid warmup_steps value: 2.5",
        ),
        (
            OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig {
                beta1: 0.0,
                ..Default::default()
            }),
            "beta1",
            "eval swap divides by beta1",
        ),
        (
            OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig::default())
                .nonfinite(wgpu_optim::grad::NonFinite::Skip),
            "gradients.nonfinite",
            "running averaging state",
        ),
        (
            OptimizerSpec::lamb(LambConfig {
                clamp_value: -1.0,
                ..Default::default()
            }),
            "clamp_value",
            "Invalid clamp value: -1",
        ),
        (
            OptimizerSpec::lamb(LambConfig {
                beta2: 1.0,
                ..Default::default()
            }),
            "beta2",
            "Invalid beta parameter at index 1: 1",
        ),
        (
            OptimizerSpec::lars(LarsConfig {
                trust_ratio_mask: 0.5,
                ..Default::default()
            }),
            "trust_ratio_mask",
            "Invalid trust_ratio_mask value: 0.5",
        ),
        (
            OptimizerSpec::lars(LarsConfig {
                trust_coefficient: f64::INFINITY,
                ..Default::default()
            }),
            "trust_coefficient",
            "Invalid trust_coefficient value: inf",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                lr: -0.1,
                ..Default::default()
            }),
            "lr",
            "Invalid learning rate: -0.1",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                lr: nan,
                ..Default::default()
            }),
            "lr",
            "Invalid learning rate: NaN",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                lr: f64::INFINITY,
                ..Default::default()
            }),
            "lr",
            "Invalid learning rate",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                momentum: -1.0,
                ..Default::default()
            }),
            "momentum",
            "Invalid momentum value: -1",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                dampening: -1.0,
                ..Default::default()
            }),
            "dampening",
            "Invalid dampening value",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                weight_decay: -1e-3,
                ..Default::default()
            }),
            "weight_decay",
            "Invalid weight_decay value: -0.001",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                nesterov: true,
                ..Default::default()
            }),
            "nesterov",
            "Nesterov momentum requires a momentum and zero dampening",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                nesterov: true,
                momentum: 0.9,
                dampening: 0.1,
                ..Default::default()
            }),
            "nesterov",
            "zero dampening",
        ),
        (
            OptimizerSpec::sgd(SgdConfig {
                l1: -1.0,
                ..Default::default()
            }),
            "l1",
            "Invalid l1 value",
        ),
        (
            OptimizerSpec::adam(AdamConfig {
                beta1: 1.5,
                ..Default::default()
            }),
            "beta1",
            "Invalid beta parameter at index 0: 1.5",
        ),
        (
            OptimizerSpec::adam(AdamConfig {
                beta1: 1.0,
                ..Default::default()
            }),
            "beta1",
            "Invalid beta parameter at index 0: 1",
        ),
        (
            OptimizerSpec::adam(AdamConfig {
                beta2: -0.1,
                ..Default::default()
            }),
            "beta2",
            "Invalid beta parameter at index 1: -0.1",
        ),
        (
            OptimizerSpec::adam(AdamConfig {
                beta2: nan,
                ..Default::default()
            }),
            "beta2",
            "Invalid beta parameter at index 1: NaN",
        ),
        (
            OptimizerSpec::adam(AdamConfig {
                eps: -1e-8,
                ..Default::default()
            }),
            "eps",
            "Invalid epsilon value",
        ),
        (
            OptimizerSpec::adamw(AdamWConfig {
                weight_decay: -0.01,
                ..Default::default()
            }),
            "weight_decay",
            "Invalid weight_decay value",
        ),
        (
            OptimizerSpec::adamw(AdamWConfig {
                lr: nan,
                ..Default::default()
            }),
            "lr",
            "Invalid learning rate",
        ),
        (
            OptimizerSpec::adagrad(AdagradConfig {
                lr_decay: -1.0,
                ..Default::default()
            }),
            "lr_decay",
            "Invalid lr_decay value: -1",
        ),
        (
            OptimizerSpec::adagrad(AdagradConfig {
                initial_accumulator_value: -1.0,
                ..Default::default()
            }),
            "initial_accumulator_value",
            "Invalid initial_accumulator_value value",
        ),
        (
            OptimizerSpec::adagrad(AdagradConfig {
                eps: nan,
                ..Default::default()
            }),
            "eps",
            "Invalid epsilon value",
        ),
        (
            OptimizerSpec::adadelta(AdadeltaConfig {
                rho: 1.1,
                ..Default::default()
            }),
            "rho",
            "Invalid rho value: 1.1",
        ),
        (
            OptimizerSpec::adadelta(AdadeltaConfig {
                eps: -1.0,
                ..Default::default()
            }),
            "eps",
            "Invalid epsilon value",
        ),
        (
            OptimizerSpec::rmsprop(RmsPropConfig {
                alpha: -0.5,
                ..Default::default()
            }),
            "alpha",
            "Invalid alpha value: -0.5",
        ),
        (
            OptimizerSpec::rmsprop(RmsPropConfig {
                momentum: -0.5,
                ..Default::default()
            }),
            "momentum",
            "Invalid momentum value",
        ),
        (
            OptimizerSpec::rmsprop(RmsPropConfig {
                eps: -1.0,
                ..Default::default()
            }),
            "eps",
            "Invalid epsilon value",
        ),
        (
            OptimizerSpec::adam(AdamConfig::default()).group(ParamGroup::names(["b"]).lr(-1.0)),
            "groups[1].lr",
            "Invalid learning rate: -1",
        ),
        (
            OptimizerSpec::adam(AdamConfig::default())
                .group(ParamGroup::names(["b"]).weight_decay(nan)),
            "groups[1].weight_decay",
            "Invalid weight_decay value",
        ),
        (
            OptimizerSpec::adam(AdamConfig::default()).group(ParamGroup::matching("*.bias")),
            "groups[1]",
            "selects no tensor",
        ),
        (
            OptimizerSpec::adam(AdamConfig::default())
                .group(ParamGroup::names(["b"]))
                .group(ParamGroup::matching("*")),
            "groups[2]",
            "more than one parameter group",
        ),
    ]
}

#[test]
fn invalid_hyperparameters_name_field_value_and_range() {
    // Its own device: the creation counter must not see other tests' buffers.
    let own = new_gpu();
    let gpu = &own;
    let params = ParamSet::new(gpu, &layout()).unwrap();
    let before = gpu.creation_counts();
    for (spec, field, words) in invalid_configs() {
        let e = Optimizer::new(gpu, &spec, &params).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(words), "{msg:?} should contain {words:?}");
        assert!(
            msg.contains(&format!("field `{field}`")),
            "{msg:?} should name {field}"
        );
        assert!(msg.contains("allowed:"), "{msg:?} says what is allowed");
        match e {
            Error::InvalidConfig { field: f, .. } => assert_eq!(f, field),
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        gpu.creation_counts().buffers,
        before.buffers,
        "validation precedes allocation"
    );
}

#[test]
fn valid_defaults_are_pytorchs() {
    assert_eq!(SgdConfig::default().lr, 1e-3);
    let a = AdamConfig::default();
    assert_eq!(
        (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 0.0)
    );
    assert_eq!(AdamWConfig::default().weight_decay, 1e-2);
    let g = AdagradConfig::default();
    assert_eq!(
        (g.lr, g.eps, g.initial_accumulator_value),
        (1e-2, 1e-10, 0.0)
    );
    let d = AdadeltaConfig::default();
    assert_eq!((d.lr, d.rho, d.eps), (1.0, 0.9, 1e-6));
    let r = RmsPropConfig::default();
    assert_eq!((r.lr, r.alpha, r.eps), (1e-2, 0.99, 1e-8));
}

#[test]
fn wrong_lengths_and_unknown_names_change_nothing() {
    let gpu = gpu();
    let mut params = ParamSet::new(gpu, &layout()).unwrap();
    params.write(gpu, "b", &[1.0, 2.0, 3.0]).unwrap();
    let e = params.write(gpu, "b", &[9.0, 9.0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
    assert!(
        e.to_string()
            .contains("`b` of shape [3] has 3 elements, but 2 were given"),
        "{e}"
    );
    let e = params.write(gpu, "nope", &[1.0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownTensor);
    assert!(
        e.to_string().contains("`nope`") && e.to_string().contains("w, b"),
        "{e}"
    );
    // write_all checks every tensor before writing any.
    let e = params
        .write_all(gpu, &[vec![5.0; 12], vec![5.0; 4]])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
    let e = params.write_grads_all(gpu, &[vec![5.0; 12]]).unwrap_err();
    assert!(e.to_string().contains("2 tensors, but 1"), "{e}");
    assert_eq!(params.read(gpu, "b").unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(params.read(gpu, "w").unwrap(), vec![0.0; 12]);
}

#[test]
fn objects_of_another_device_are_refused() {
    let a = gpu();
    let b = new_gpu();
    let layout = layout();
    let mut pa = ParamSet::new(a, &layout).unwrap();
    let e = pa.write(&b, "b", &[1.0; 3]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongDevice, "{e}");
    let spec = OptimizerSpec::sgd(SgdConfig::default());
    let e = Optimizer::new(&b, &spec, &pa).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongDevice, "{e}");
    let mut opt = Optimizer::new(a, &spec, &pa).unwrap();
    let e = opt.step(&b, &mut pa).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongDevice);
    // Another ParamSet on the right device is refused too.
    let mut other = ParamSet::new(a, &layout).unwrap();
    let e = opt.step(a, &mut other).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
    assert_eq!(opt.step_count(), 0, "failed steps do not count");
}

#[test]
fn bad_runtime_settings_change_nothing() {
    let gpu = gpu();
    let mut params = ParamSet::new(gpu, &layout()).unwrap();
    let spec = OptimizerSpec::adam(AdamConfig::default()).group(ParamGroup::names(["b"]).lr(0.5));
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let e = opt.set_lr(1, f64::NAN).unwrap_err();
    assert!(e.to_string().contains("Invalid learning rate: NaN"), "{e}");
    let e = opt.set_lr(1, -1.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let e = opt.set_lr(7, 0.1).unwrap_err();
    assert!(e.to_string().contains("no param group 7"), "{e}");
    assert!(opt.set_lr_all(f64::INFINITY).is_err());
    assert!(opt.set_grad_scale(f64::NAN).is_err());
    assert_eq!(opt.group_hp(1).unwrap().lr, 0.5);
    assert_eq!(opt.group_hp(0).unwrap().lr, 1e-3);
    let e = opt.read_state(gpu, "momentum_buffer", "b").unwrap_err();
    assert!(e.to_string().contains("exp_avg"), "{e}");
    let e = opt.write_state(gpu, "exp_avg", "b", &[1.0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
    opt.step(gpu, &mut params).unwrap();
}

#[test]
fn layout_errors() {
    let e = ParamLayout::new(&[("a", &[2][..]), ("a", &[3][..])]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let e = ParamLayout::new(&[("a", &[usize::MAX, 4][..])]).unwrap_err();
    assert!(e.to_string().contains("shape of `a`"), "{e}");
    let gpu = gpu();
    let l = layout();
    let e = ParamSet::with_chunk_elems(gpu, &l, 100).unwrap_err();
    assert!(e.to_string().contains("multiple of 64"), "{e}");
    let e = ParamSet::with_chunk_elems(gpu, &l, gpu.max_binding_elems() * 2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    assert!(
        e.to_string().contains("max_storage_buffer_binding_size"),
        "{e}"
    );
}

#[test]
fn too_many_groups_is_a_limit_error() {
    let names: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
    let shapes: Vec<(&str, &[usize])> = names.iter().map(|n| (n.as_str(), &[1usize][..])).collect();
    let layout = ParamLayout::new(&shapes).unwrap();
    let mut spec = OptimizerSpec::sgd(SgdConfig::default());
    for n in &names {
        spec = spec.group(ParamGroup::names([n.clone()]));
    }
    let e = spec.resolve(&layout).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    assert!(e.to_string().contains("301 needed"), "{e}");
}

/// Every numeric hyperparameter of the case's optimizer, overridden in a
/// param group to NaN, to -1 or to 1e39 (finite in f64, not in f32), is
/// refused with an error naming that group's field; an unknown name too.
fn every_hyperparameter_refuses_nan_negative_and_beyond_f32(name: &str, spec: &OptimizerSpec) {
    let gpu = gpu();
    // The layout the table's cases are written for; `mat` is in no case's group.
    let layout = ParamLayout::new(&[
        ("empty", &[0][..]),
        ("one", &[1][..]),
        ("odd", &[3][..]),
        ("big", &[9][..]),
        ("mat", &[2, 2][..]),
        ("bias", &[2][..]),
    ])
    .unwrap();
    let params = ParamSet::new(gpu, &layout).unwrap();
    let index = spec.resolve(&layout).unwrap().groups.len();
    let algo = spec.algorithm();
    for &hp in algo.hyperparameter_names() {
        // Running state (Schedule-Free's weight_sum) lives on the host in
        // f64 only: any finite value >= 0 is valid, 1e39 too.
        let bads: &[f64] = if algo.running_state_names().contains(&hp) {
            &[f64::NAN, -1.0, f64::INFINITY]
        } else {
            &[f64::NAN, -1.0, 1e39]
        };
        for &bad in bads {
            let s = spec.clone().group(ParamGroup::names(["mat"]).set(hp, bad));
            let e = Optimizer::new(gpu, &s, &params).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidConfig,
                "{name}: {hp} = {bad}: {e}"
            );
            match &e {
                Error::InvalidConfig { field, .. } => {
                    assert_eq!(
                        field,
                        &format!("groups[{index}].{hp}"),
                        "{name}: {hp} = {bad}"
                    )
                }
                other => panic!("{other}"),
            }
        }
    }
    let s = spec
        .clone()
        .group(ParamGroup::names(["mat"]).set("no_such_thing", 0.1));
    let text = Optimizer::new(gpu, &s, &params).unwrap_err().to_string();
    assert!(
        text.contains("no hyperparameter `no_such_thing`"),
        "{name}: {text}"
    );
}

/// One test per case of the shared table.
mod every_hyperparameter_is_validated {
    crate::optimizer_cases!(super::every_hyperparameter_refuses_nan_negative_and_beyond_f32);
}
