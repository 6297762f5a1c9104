//! The one table of optimizer cases that the GPU tests share (PyTorch's
//! `OptimizerInfo` / optax's `_OPTIMIZERS_UNDER_TEST` style): every
//! registered optimizer with its variants and param groups. The macro
//! [`optimizer_cases!`] turns it into one `#[test]` per case, so one failure
//! does not hide the others. Adding an optimizer adds its rows here and its
//! names to the macro's list.

use wgpu_optim::optim::*;

pub fn configs() -> Vec<(&'static str, OptimizerSpec)> {
    let groups = |s: OptimizerSpec| {
        s.group(
            ParamGroup::matching("b*")
                .lr(0.05)
                .weight_decay(0.0)
                .l1(0.001),
        )
        .group(ParamGroup::names(["odd"]).lr(0.0))
    };
    vec![
        (
            "sgd",
            OptimizerSpec::sgd(SgdConfig {
                lr: 0.1,
                ..Default::default()
            }),
        ),
        (
            "sgd_momentum_dampening_wd",
            OptimizerSpec::sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.3,
                weight_decay: 0.01,
                ..Default::default()
            }),
        ),
        (
            "sgd_nesterov_maximize_l1",
            OptimizerSpec::sgd(SgdConfig {
                lr: 0.05,
                momentum: 0.8,
                nesterov: true,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            }),
        ),
        (
            "sgd_groups",
            groups(OptimizerSpec::sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.5,
                ..Default::default()
            })),
        ),
        ("adam", OptimizerSpec::adam(AdamConfig::default())),
        (
            "adam_wd_amsgrad_maximize",
            OptimizerSpec::adam(AdamConfig {
                lr: 0.01,
                weight_decay: 0.1,
                amsgrad: true,
                maximize: true,
                ..Default::default()
            }),
        ),
        (
            "adam_groups",
            groups(OptimizerSpec::adam(AdamConfig {
                lr: 0.01,
                weight_decay: 0.05,
                ..Default::default()
            })),
        ),
        (
            "adamw",
            OptimizerSpec::adamw(AdamWConfig {
                lr: 0.01,
                ..Default::default()
            }),
        ),
        (
            "adamw_amsgrad_l1",
            OptimizerSpec::adamw(AdamWConfig {
                lr: 0.01,
                weight_decay: 0.1,
                amsgrad: true,
                l1: 0.01,
                beta1: 0.5,
                beta2: 0.9,
                ..Default::default()
            }),
        ),
        (
            "adamw_groups",
            groups(OptimizerSpec::adamw(AdamWConfig {
                lr: 0.01,
                weight_decay: 0.1,
                ..Default::default()
            })),
        ),
        ("adagrad", OptimizerSpec::adagrad(AdagradConfig::default())),
        (
            "adagrad_decay_init_wd_maximize",
            OptimizerSpec::adagrad(AdagradConfig {
                lr: 0.1,
                lr_decay: 0.05,
                initial_accumulator_value: 0.3,
                weight_decay: 0.02,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            }),
        ),
        (
            "adagrad_groups",
            groups(OptimizerSpec::adagrad(AdagradConfig::default())),
        ),
        (
            "adadelta",
            OptimizerSpec::adadelta(AdadeltaConfig::default()),
        ),
        (
            "adadelta_rho_wd_maximize_l1",
            OptimizerSpec::adadelta(AdadeltaConfig {
                lr: 0.5,
                rho: 0.6,
                weight_decay: 0.1,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            }),
        ),
        (
            "adadelta_groups",
            groups(OptimizerSpec::adadelta(AdadeltaConfig::default())),
        ),
        ("rmsprop", OptimizerSpec::rmsprop(RmsPropConfig::default())),
        (
            "rmsprop_centered_momentum_wd",
            OptimizerSpec::rmsprop(RmsPropConfig {
                centered: true,
                momentum: 0.9,
                weight_decay: 0.01,
                ..Default::default()
            }),
        ),
        (
            "rmsprop_momentum_maximize_l1",
            OptimizerSpec::rmsprop(RmsPropConfig {
                momentum: 0.5,
                maximize: true,
                l1: 0.01,
                alpha: 0.9,
                ..Default::default()
            }),
        ),
        (
            "rmsprop_centered_groups",
            groups(OptimizerSpec::rmsprop(RmsPropConfig {
                centered: true,
                ..Default::default()
            })),
        ),
        ("adamax", OptimizerSpec::adamax(AdamaxConfig::default())),
        (
            "adamax_wd_maximize_l1_groups",
            groups(OptimizerSpec::adamax(AdamaxConfig {
                lr: 0.01,
                weight_decay: 0.05,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            })),
        ),
    ]
}

/// The spec of case `name`.
pub fn case(name: &str) -> OptimizerSpec {
    configs()
        .into_iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .1
}

/// One `#[test]` per case of [`configs`], each calling `$run(name, &spec)`.
#[macro_export]
macro_rules! optimizer_cases {
    ($run:path) => {
        $crate::optimizer_cases!(@each $run; sgd, sgd_momentum_dampening_wd, sgd_nesterov_maximize_l1, sgd_groups, adam, adam_wd_amsgrad_maximize, adam_groups, adamw, adamw_amsgrad_l1, adamw_groups, adagrad, adagrad_decay_init_wd_maximize, adagrad_groups, adadelta, adadelta_rho_wd_maximize_l1, adadelta_groups, rmsprop, rmsprop_centered_momentum_wd, rmsprop_momentum_maximize_l1, rmsprop_centered_groups, adamax, adamax_wd_maximize_l1_groups);
    };
    (@each $run:path; $($case:ident),*) => {
        /// The cases this macro expanded, to check against the table.
        #[allow(dead_code)]
        pub fn case_names() -> Vec<&'static str> {
            vec![$(stringify!($case)),*]
        }
        $(
            #[test]
            fn $case() {
                $run(stringify!($case), &$crate::common::cases::case(stringify!($case)));
            }
        )*
    };
}
