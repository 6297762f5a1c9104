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
        ("nadam", OptimizerSpec::nadam(NAdamConfig::default())),
        (
            "nadam_decoupled_maximize_l1_groups",
            groups(OptimizerSpec::nadam(NAdamConfig {
                lr: 0.01,
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                momentum_decay: 0.01,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            })),
        ),
        (
            "nadam_l2_betas",
            OptimizerSpec::nadam(NAdamConfig {
                weight_decay: 0.05,
                beta1: 0.6,
                beta2: 0.9,
                ..Default::default()
            }),
        ),
        // rho_t > 5 from step 6 on (for beta2 = 0.9 as for 0.999), so 8 steps
        // cross RAdam's switch to the rectified update.
        (
            "radam",
            OptimizerSpec::radam(RAdamConfig {
                lr: 0.01,
                beta2: 0.9,
                ..Default::default()
            }),
        ),
        (
            "radam_decoupled_maximize_l1_groups",
            groups(OptimizerSpec::radam(RAdamConfig {
                lr: 0.01,
                beta2: 0.95,
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            })),
        ),
        (
            "radam_l2",
            OptimizerSpec::radam(RAdamConfig {
                weight_decay: 0.05,
                ..Default::default()
            }),
        ),
        ("asgd", OptimizerSpec::asgd(AsgdConfig::default())),
        // t0 = 3: averaging starts within the 8 steps.
        (
            "asgd_t0_wd_maximize_l1_groups",
            groups(OptimizerSpec::asgd(AsgdConfig {
                lr: 0.05,
                lambd: 0.01,
                alpha: 0.5,
                t0: 3.0,
                weight_decay: 0.02,
                maximize: true,
                l1: 0.01,
            })),
        ),
        ("rprop", OptimizerSpec::rprop(RpropConfig::default())),
        (
            "rprop_groups_etas_bounds_wd_maximize_l1",
            groups(OptimizerSpec::rprop(RpropConfig {
                etaminus: 0.3,
                etaplus: 1.5,
                step_size_min: 1e-3,
                step_size_max: 0.02,
                weight_decay: 0.01,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            })),
        ),
        ("lion", OptimizerSpec::lion(LionConfig::default())),
        (
            "lion_wd_maximize_l1_groups",
            groups(OptimizerSpec::lion(LionConfig {
                lr: 0.01,
                beta1: 0.8,
                beta2: 0.9,
                weight_decay: 0.5,
                maximize: true,
                l1: 0.01,
            })),
        ),
        ("adopt", OptimizerSpec::adopt(AdoptConfig::default())),
        (
            "adopt_decoupled_nesterov_maximize_l1_groups",
            groups(OptimizerSpec::adopt(AdoptConfig {
                lr: 0.01,
                beta2: 0.99,
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                nesterov: true,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            })),
        ),
        (
            "adopt_l2_noclip",
            OptimizerSpec::adopt(AdoptConfig {
                weight_decay: 0.05,
                clip: false,
                eps: 1e-3,
                ..Default::default()
            }),
        ),
        ("lamb", OptimizerSpec::lamb(LambConfig::default())),
        (
            "lamb_wd_clamp_debias_maximize_l1_groups",
            groups(OptimizerSpec::lamb(LambConfig {
                lr: 0.01,
                weight_decay: 0.1,
                clamp_value: 0.5,
                debias: true,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            })),
        ),
        (
            "lamb_adam_mode",
            OptimizerSpec::lamb(LambConfig {
                lr: 0.01,
                weight_decay: 0.01,
                adam: true,
                ..Default::default()
            }),
        ),
        (
            "lars",
            OptimizerSpec::lars(LarsConfig {
                lr: 2.0,
                ..Default::default()
            }),
        ),
        (
            "lars_nesterov_wd_eps_maximize_l1_groups_mask",
            groups(OptimizerSpec::lars(LarsConfig {
                lr: 2.0,
                weight_decay: 0.01,
                trust_coefficient: 0.02,
                eps: 1e-3,
                momentum: 0.8,
                nesterov: true,
                maximize: true,
                l1: 0.01,
                ..Default::default()
            }))
            .group(
                ParamGroup::names(["mat"])
                    .weight_decay(0.0)
                    .set("trust_ratio_mask", 0.0),
            ),
        ),
        (
            "schedule_free_adamw",
            OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig::default()),
        ),
        (
            "schedule_free_adamw_warmup_wd_r_maximize_l1_groups",
            groups(OptimizerSpec::schedule_free_adamw(
                ScheduleFreeAdamWConfig {
                    lr: 0.01,
                    beta1: 0.8,
                    warmup_steps: 3.0,
                    weight_decay: 0.05,
                    r: 0.5,
                    weight_lr_power: 1.0,
                    maximize: true,
                    l1: 0.01,
                    ..Default::default()
                },
            )),
        ),
        (
            "schedule_free_sgd",
            OptimizerSpec::schedule_free_sgd(ScheduleFreeSgdConfig {
                lr: 0.1,
                ..Default::default()
            }),
        ),
        (
            "schedule_free_sgd_warmup_wd_maximize_l1_groups",
            groups(OptimizerSpec::schedule_free_sgd(ScheduleFreeSgdConfig {
                lr: 0.1,
                momentum: 0.7,
                warmup_steps: 4.0,
                weight_decay: 0.01,
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
        $crate::optimizer_cases!(@each $run; sgd, sgd_momentum_dampening_wd, sgd_nesterov_maximize_l1, sgd_groups, adam, adam_wd_amsgrad_maximize, adam_groups, adamw, adamw_amsgrad_l1, adamw_groups, adagrad, adagrad_decay_init_wd_maximize, adagrad_groups, adadelta, adadelta_rho_wd_maximize_l1, adadelta_groups, rmsprop, rmsprop_centered_momentum_wd, rmsprop_momentum_maximize_l1, rmsprop_centered_groups, adamax, adamax_wd_maximize_l1_groups, nadam, nadam_decoupled_maximize_l1_groups, nadam_l2_betas, radam, radam_decoupled_maximize_l1_groups, radam_l2, asgd, asgd_t0_wd_maximize_l1_groups, rprop, rprop_groups_etas_bounds_wd_maximize_l1, lion, lion_wd_maximize_l1_groups, adopt, adopt_decoupled_nesterov_maximize_l1_groups, adopt_l2_noclip, lamb, lamb_wd_clamp_debias_maximize_l1_groups, lamb_adam_mode, lars, lars_nesterov_wd_eps_maximize_l1_groups_mask, schedule_free_adamw, schedule_free_adamw_warmup_wd_r_maximize_l1_groups, schedule_free_sgd, schedule_free_sgd_warmup_wd_maximize_l1_groups);
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
