//! The crate's own adversarial suite (issue 15): a table of bad inputs and
//! misuses against the public API, each with the error it must give, and a
//! check that the live state — every param, every optimizer state, the step
//! count and every group's hyperparameters — is bitwise unchanged after
//! each error.

mod common;

use common::{Rng, gpu, new_gpu};
use wgpu_optim::optim::*;
use wgpu_optim::{ErrorKind, Gpu, Optimizer, ParamLayout, ParamSet};

fn layout() -> ParamLayout {
    ParamLayout::new(&[("w", &[5, 3][..]), ("b", &[3][..])]).unwrap()
}

type Misuse = fn(&Gpu, &mut ParamSet, &mut Optimizer) -> wgpu_optim::Result<()>;

/// (what it guards, the misuse, the error kind, words of the message)
fn table() -> Vec<(&'static str, Misuse, ErrorKind, &'static str)> {
    use ErrorKind::*;
    vec![
        (
            "set_lr_nan",
            |_, _, o| o.set_lr(0, f64::NAN),
            InvalidConfig,
            "learning rate",
        ),
        (
            "set_lr_beyond_f32",
            |_, _, o| o.set_lr(0, 1e39),
            InvalidConfig,
            "learning rate",
        ),
        (
            "set_lr_unknown_group",
            |_, _, o| o.set_lr(9, 0.1),
            InvalidConfig,
            "no param group 9",
        ),
        (
            "set_lrs_wrong_count",
            |_, _, o| o.set_lrs(&[0.1]),
            LayoutMismatch,
            "1 learning rates for 2",
        ),
        (
            "set_lrs_one_bad",
            |_, _, o| o.set_lrs(&[0.1, -1.0]),
            InvalidConfig,
            "learning rate",
        ),
        (
            "set_momentum_out_of_range",
            |_, _, o| o.set_momentum(1.5),
            InvalidConfig,
            "beta",
        ),
        (
            "set_hyperparameter_unknown",
            |_, _, o| o.set_hyperparameter(1, "rho", 0.5),
            InvalidConfig,
            "no hyperparameter `rho`",
        ),
        (
            "set_hyperparameter_invalid",
            |_, _, o| o.set_hyperparameter(1, "beta2", 1.0),
            InvalidConfig,
            "index 1",
        ),
        (
            "set_hyperparameter_eps_beyond_f32",
            |_, _, o| o.set_hyperparameter(0, "eps", 1e39),
            InvalidConfig,
            "epsilon",
        ),
        (
            "set_grad_scale_beyond_f32",
            |_, _, o| o.set_grad_scale(1e39),
            InvalidConfig,
            "grad_scale",
        ),
        (
            "set_grad_scale_nan",
            |_, _, o| o.set_grad_scale(f64::NAN),
            InvalidConfig,
            "grad_scale",
        ),
        (
            "write_wrong_length",
            |g, p, _| p.write(g, "w", &[0.0; 3]),
            LayoutMismatch,
            "15 elements",
        ),
        (
            "write_unknown_tensor",
            |g, p, _| p.write(g, "nope", &[0.0; 3]),
            UnknownTensor,
            "nope",
        ),
        (
            "write_grad_wrong_length",
            |g, p, _| p.write_grad(g, "b", &[0.0; 4]),
            LayoutMismatch,
            "3 elements",
        ),
        (
            "write_state_unknown_state",
            |g, _, o| o.write_state(g, "momentum_buffer", "b", &[0.0; 3]),
            InvalidConfig,
            "momentum_buffer",
        ),
        (
            "write_state_wrong_length",
            |g, _, o| o.write_state(g, "exp_avg", "b", &[0.0; 2]),
            LayoutMismatch,
            "2 were given",
        ),
        (
            "read_state_unknown_tensor",
            |g, _, o| o.read_state(g, "exp_avg", "nope").map(|_| ()),
            UnknownTensor,
            "nope",
        ),
        (
            "step_with_another_param_set",
            |g, _, o| {
                let mut other = ParamSet::new(g, &layout())?;
                o.step(g, &mut other)
            },
            LayoutMismatch,
            "built for ParamSet",
        ),
        (
            "step_with_params_of_another_device",
            |_, p, o| {
                let other = new_gpu();
                o.step(&other, p)
            },
            WrongDevice,
            "",
        ),
        (
            "stats_without_a_gradient_pipeline",
            |g, _, o| o.stats(g).map(|_| ()),
            InvalidConfig,
            "no gradient pipeline",
        ),
        (
            "step_past_u64_max",
            |g, p, o| {
                let s = o.step_count();
                o.set_step_count(u64::MAX);
                let r = o.step(g, p);
                o.set_step_count(s);
                r
            },
            InvalidConfig,
            "u64::MAX",
        ),
    ]
}

/// Everything live, as bits.
fn snapshot(g: &Gpu, p: &ParamSet, o: &Optimizer) -> Vec<Vec<u64>> {
    let mut v: Vec<Vec<u64>> = p
        .read_all(g)
        .unwrap()
        .iter()
        .map(|t| t.iter().map(|x| x.to_bits() as u64).collect())
        .collect();
    for s in o.state_names() {
        for t in p.layout().tensors() {
            let st = o.read_state(g, s, &t.name).unwrap();
            v.push(st.iter().map(|x| x.to_bits() as u64).collect());
        }
    }
    v.push(vec![o.step_count()]);
    for grp in 0..o.num_groups() {
        let c = o.group_config(grp).unwrap();
        let hp: Vec<u64> = c
            .hyperparameter_names()
            .iter()
            .map(|n| c.get(n).unwrap().to_bits())
            .collect();
        v.push(hp);
    }
    v
}

#[test]
fn every_bad_input_of_the_table_errors_and_changes_nothing() {
    let gpu = gpu();
    let mut failures = Vec::new();
    for (name, misuse, kind, words) in table() {
        let mut params = ParamSet::new(gpu, &layout()).unwrap();
        let mut rng = Rng(2);
        params
            .write_all(gpu, &[rng.vec(15, 1.0), rng.vec(3, 1.0)])
            .unwrap();
        params
            .write_grads_all(gpu, &[rng.vec(15, 0.5), rng.vec(3, 0.5)])
            .unwrap();
        let spec = OptimizerSpec::adam(AdamConfig {
            lr: 0.01,
            ..Default::default()
        })
        .group(ParamGroup::names(["b"]).betas(0.8, 0.99));
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        opt.step(gpu, &mut params).unwrap();
        let before = snapshot(gpu, &params, &opt);
        match misuse(gpu, &mut params, &mut opt) {
            Ok(()) => failures.push(format!("{name}: returned Ok")),
            Err(e) => {
                if e.kind() != kind || !e.to_string().contains(words) {
                    failures.push(format!("{name}: {:?} {e}", e.kind()));
                }
            }
        }
        if snapshot(gpu, &params, &opt) != before {
            failures.push(format!("{name}: live state changed"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
