//! Schedules and early stopping wired to the GPU engine: lrs applied per
//! group without rebuilds or readbacks, momentum cycling, the driver's
//! guarantees (step-0 rate at construction, all-or-nothing writes, refused
//! values named), every replica of a data-parallel job driven alike, and
//! restore-best weights kept on the device.

mod common;

use common::{gpu, new_gpu};
use wgpu_optim::early_stopping::{BestWeights, EarlyStopping, EarlyStoppingConfig};
use wgpu_optim::optim::*;
use wgpu_optim::schedule::{LrScheduler, OneCycleConfig, Schedule};
use wgpu_optim::{Error, ErrorKind, Optimizer, ParamLayout, ParamSet};

fn layout() -> ParamLayout {
    ParamLayout::new(&[("w", &[5][..]), ("b", &[3][..])]).unwrap()
}

#[test]
fn restore_best_weights_brings_back_the_best_epoch_on_the_device() {
    let gpu = gpu();
    let mut params = ParamSet::new(gpu, &layout()).unwrap();
    let mut stop = EarlyStopping::new(EarlyStoppingConfig {
        patience: 2,
        restore_best_weights: true,
        ..Default::default()
    })
    .unwrap();
    let mut best = BestWeights::new(gpu, &params).unwrap();
    // val_loss per epoch: best at epoch 2, then no improvement for 2 epochs.
    let losses = [0.9, 0.5, 0.3, f64::NAN, 0.4, 0.35, 0.2];
    let mut stopped_at = None;
    for (epoch, &loss) in losses.iter().enumerate() {
        // "Training": the params of epoch e are all e.
        params.write(gpu, "w", &[epoch as f32; 5]).unwrap();
        params.write(gpu, "b", &[-(epoch as f32); 3]).unwrap();
        let d = stop.update(epoch as u64, loss);
        best.apply(gpu, &mut params, &d).unwrap();
        if d.stop {
            stopped_at = Some(epoch);
            break;
        }
    }
    assert_eq!(
        stopped_at,
        Some(4),
        "patience 2 after the best epoch 2 (NaN is no improvement)"
    );
    assert_eq!(stop.best_epoch(), Some(2));
    assert!(
        stop.reason()
            .unwrap()
            .to_string()
            .contains("no improvement for 2 epoch"),
        "{}",
        stop.reason().unwrap()
    );
    assert_eq!(params.read(gpu, "w").unwrap(), vec![2.0; 5]);
    assert_eq!(params.read(gpu, "b").unwrap(), vec![-2.0; 3]);
    // A snapshot of another ParamSet is refused.
    let other = ParamSet::new(gpu, &layout()).unwrap();
    let snap = other.snapshot(gpu).unwrap();
    assert_eq!(
        params.restore_from(gpu, &snap).unwrap_err().kind(),
        ErrorKind::LayoutMismatch
    );
}

#[test]
fn a_schedule_drives_each_group_without_rebuilds() {
    let gpu = new_gpu();
    let mut params = ParamSet::new(&gpu, &layout()).unwrap();
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        ..Default::default()
    })
    .group(ParamGroup::names(["b"]).lr(0.01));
    let mut opt = Optimizer::new(&gpu, &spec, &params).unwrap();
    let schedule = Schedule::step(0.1, 2, 0.5).unwrap();
    let mut sched = LrScheduler::new(&mut opt, schedule.clone()).unwrap();
    params.write_grad(&gpu, "w", &[1.0; 5]).unwrap();
    params.write_grad(&gpu, "b", &[1.0; 3]).unwrap();
    opt.step(&gpu, &mut params).unwrap();
    let counts = gpu.creation_counts();
    let (mut w, mut b) = (-0.1f32, -0.01f32);
    for k in 1..7u64 {
        sched.advance(&mut opt).unwrap();
        assert_eq!(opt.group_hp(0).unwrap().lr, schedule.lr(k));
        assert!(
            (opt.group_hp(1).unwrap().lr - schedule.lr(k) * 0.1).abs() < 1e-15,
            "groups keep their ratio"
        );
        opt.step(&gpu, &mut params).unwrap();
        w -= schedule.lr(k) as f32;
        b -= (schedule.lr(k) * 0.1) as f32;
    }
    gpu.synchronize().unwrap();
    assert_eq!(gpu.creation_counts(), counts, "setting lrs builds nothing");
    let got_w = params.read(&gpu, "w").unwrap();
    let got_b = params.read(&gpu, "b").unwrap();
    // Each step rounds once in f32 on both sides, in the same order.
    assert!(
        got_w.iter().all(|&x| (x - w).abs() <= 1e-6),
        "{got_w:?} vs {w}"
    );
    assert!(
        got_b.iter().all(|&x| (x - b).abs() <= 1e-6),
        "{got_b:?} vs {b}"
    );
}

#[test]
fn per_group_schedules_and_resume_at_step_k() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &layout()).unwrap();
    let spec = OptimizerSpec::adam(AdamConfig::default()).group(ParamGroup::names(["b"]));
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let s0 = Schedule::warmup_cosine(1e-3, 10, 100, 1e-5).unwrap();
    let s1 = Schedule::exponential(1e-2, 0.9).unwrap();
    let mut sched = LrScheduler::per_group(&mut opt, vec![s0.clone(), s1.clone()]).unwrap();
    sched.set_step(42);
    sched.apply(&mut opt).unwrap();
    assert_eq!(opt.group_hp(0).unwrap().lr, s0.lr(42));
    assert_eq!(opt.group_hp(1).unwrap().lr, s1.lr(42));
    let e = LrScheduler::per_group(&mut opt, vec![s0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
}

#[test]
fn one_cycle_cycles_momentum_and_beta1() {
    let gpu = gpu();
    let params = ParamSet::new(gpu, &layout()).unwrap();
    let oc = Schedule::one_cycle(OneCycleConfig::new(0.1, 20)).unwrap();
    for spec in [
        OptimizerSpec::sgd(SgdConfig {
            momentum: 0.9,
            ..Default::default()
        }),
        OptimizerSpec::adam(AdamConfig::default()),
    ] {
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        let mut sched = LrScheduler::new(&mut opt, oc.clone()).unwrap();
        sched.apply(&mut opt).unwrap();
        for _ in 0..5 {
            sched.advance(&mut opt).unwrap();
        }
        let g0 = opt.group_config(0).unwrap();
        let m = match g0 {
            Algorithm::Sgd(_) => g0.get("momentum").unwrap(),
            Algorithm::Adam(_) => g0.get("beta1").unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(Some(m), oc.momentum(5));
        assert_eq!(opt.group_hp(0).unwrap().lr, oc.lr(5));
    }
    let mut adagrad = Optimizer::new(
        gpu,
        &OptimizerSpec::adagrad(AdagradConfig::default()),
        &params,
    )
    .unwrap();
    let e = adagrad.set_momentum(0.9).unwrap_err();
    assert!(e.to_string().contains("without a momentum buffer"), "{e}");
    let mut adam =
        Optimizer::new(gpu, &OptimizerSpec::adam(AdamConfig::default()), &params).unwrap();
    let e = adam.set_momentum(1.5).unwrap_err();
    assert!(
        e.to_string()
            .contains("Invalid beta parameter at index 0: 1.5"),
        "{e}"
    );
}

#[test]
fn reduce_lr_on_plateau_drives_every_group() {
    use wgpu_optim::schedule::{PlateauConfig, ReduceLrOnPlateau};
    let gpu = gpu();
    let params = ParamSet::new(gpu, &layout()).unwrap();
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        ..Default::default()
    })
    .group(ParamGroup::names(["b"]).lr(0.01));
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let mut plateau = ReduceLrOnPlateau::new(PlateauConfig {
        patience: 1,
        factor: 0.5,
        ..Default::default()
    })
    .unwrap();
    for metric in [1.0, 1.0, 1.0] {
        let mut lrs = opt.lrs();
        plateau.step(metric, &mut lrs).unwrap();
        opt.set_lrs(&lrs).unwrap();
    }
    assert_eq!(
        opt.lrs(),
        vec![0.05, 0.005],
        "one reduction after patience 1"
    );
    assert_eq!(
        opt.set_lrs(&[0.1]).unwrap_err().kind(),
        ErrorKind::LayoutMismatch
    );
    assert!(opt.set_lrs(&[0.1, f64::NAN]).is_err());
    assert_eq!(
        opt.lrs(),
        vec![0.05, 0.005],
        "a refused update changes nothing"
    );
}

// -------------------------------------------- LrScheduler guarantees (issue 15)

/// An SGD optimizer over `layout()` with lr 0.1 and, when `two_groups`, a
/// second group `b` with lr 0.01.
fn sgd(two_groups: bool, momentum: f64) -> Optimizer {
    let params = ParamSet::new(gpu(), &layout()).unwrap();
    let mut spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        momentum,
        ..Default::default()
    });
    if two_groups {
        spec = spec.group(ParamGroup::names(["b"]).lr(0.01));
    }
    Optimizer::new(gpu(), &spec, &params).unwrap()
}

fn sgd_momentum(opt: &Optimizer) -> f64 {
    match opt.group_config(0).unwrap() {
        g @ Algorithm::Sgd(_) => g.get("momentum").unwrap(),
        other => panic!("{other:?}"),
    }
}

fn invalid_field(e: &Error) -> &str {
    match e {
        Error::InvalidConfig { field, .. } => field,
        other => panic!("not InvalidConfig: {other}"),
    }
}

#[test]
fn lr_scheduler_new_applies_the_step0_rate() {
    let gpu = new_gpu();
    let mut params = ParamSet::new(&gpu, &layout()).unwrap();
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        ..Default::default()
    })
    .group(ParamGroup::names(["b"]).lr(0.01));
    let mut opt = Optimizer::new(&gpu, &spec, &params).unwrap();
    let warmup = Schedule::warmup_cosine(0.1, 4, 20, 0.0).unwrap();
    let mut sched = LrScheduler::new(&mut opt, warmup.clone()).unwrap();
    assert_eq!(opt.lrs(), vec![0.0, 0.0], "the warmup starts at 0");
    // The documented loop: its first step runs at the step-0 rate.
    params.write(&gpu, "w", &[1.0; 5]).unwrap();
    params.write_grad(&gpu, "w", &[1.0; 5]).unwrap();
    params.write_grad(&gpu, "b", &[1.0; 3]).unwrap();
    opt.step(&gpu, &mut params).unwrap();
    sched.advance(&mut opt).unwrap();
    assert_eq!(
        params.read(&gpu, "w").unwrap(),
        vec![1.0; 5],
        "lr 0: no change"
    );
    assert_eq!(opt.lrs()[0], warmup.lr(1));
    // per_group writes step 0 too, momentum included.
    let mut opt = sgd(true, 0.9);
    let cyc = Schedule::cyclic(wgpu_optim::schedule::CyclicConfig {
        step_size_up: 4,
        ..wgpu_optim::schedule::CyclicConfig::new(0.001, 0.01)
    })
    .unwrap();
    let exp = Schedule::exponential(0.05, 0.5).unwrap();
    LrScheduler::per_group(&mut opt, vec![cyc.clone(), exp]).unwrap();
    assert_eq!(opt.lrs(), vec![0.001, 0.05]);
    assert_eq!(Some(sgd_momentum(&opt)), cyc.momentum(0));
    assert_eq!(sgd_momentum(&opt), 0.9, "CyclicLR's max_momentum at step 0");
}

#[test]
fn lr_scheduler_refuses_an_optimizer_with_another_group_count() {
    let mut one = sgd(false, 0.0);
    let mut sched = LrScheduler::new(&mut one, Schedule::step(0.1, 1, 0.5).unwrap()).unwrap();
    let mut two = sgd(true, 0.0);
    for e in [
        sched.apply(&mut two).unwrap_err(),
        sched.advance(&mut two).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
        let msg = e.to_string();
        assert!(
            msg.contains("built for 1 param group(s)") && msg.contains("has 2"),
            "{msg}"
        );
    }
    assert_eq!(two.lrs(), vec![0.1, 0.01], "group 1 is not left behind");
    assert_eq!(sched.step_count(), 0);
}

#[test]
fn lr_scheduler_advance_changes_nothing_on_failure() {
    // A NaN at step 3: the step stays at 2 and the optimizer at step 2's lr.
    let mut opt = sgd(true, 0.0);
    let f = Schedule::from_fn(std::sync::Arc::new(|k| {
        if k == 3 {
            f64::NAN
        } else {
            0.1 / (1 + k) as f64
        }
    }));
    let mut sched = LrScheduler::new(&mut opt, f).unwrap();
    sched.advance(&mut opt).unwrap();
    sched.advance(&mut opt).unwrap();
    let before = opt.lrs();
    assert!(sched.advance(&mut opt).is_err());
    assert_eq!(sched.step_count(), 2);
    assert_eq!(opt.lrs(), before);
    // The lrs are written before the momentum: a refused momentum puts them
    // back (Adagrad has none to cycle; PyTorch refuses it at construction).
    let params = ParamSet::new(gpu(), &layout()).unwrap();
    let mut adagrad = Optimizer::new(
        gpu(),
        &OptimizerSpec::adagrad(AdagradConfig {
            lr: 0.1,
            ..Default::default()
        }),
        &params,
    )
    .unwrap();
    let e = LrScheduler::new(
        &mut adagrad,
        Schedule::one_cycle(OneCycleConfig::new(0.5, 10)).unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("without a momentum buffer"), "{e}");
    assert_eq!(
        adagrad.lrs(),
        vec![0.1],
        "the lr written first was put back"
    );
}

#[test]
fn lr_scheduler_advance_past_u64_max_is_an_error() {
    let mut opt = sgd(false, 0.0);
    let mut sched = LrScheduler::new(&mut opt, Schedule::constant(0.1).unwrap()).unwrap();
    sched.set_step(u64::MAX);
    sched.apply(&mut opt).unwrap();
    let e = sched.advance(&mut opt).unwrap_err();
    assert_eq!(invalid_field(&e), "step", "{e}");
    assert_eq!(sched.step_count(), u64::MAX, "no wrap to 0");
}

#[test]
fn lr_scheduler_lr_of_a_missing_group_is_an_error() {
    let mut opt = sgd(true, 0.0);
    let sched = LrScheduler::new(&mut opt, Schedule::constant(0.1).unwrap()).unwrap();
    assert_eq!(sched.num_groups(), 2);
    assert_eq!(sched.lr(1).unwrap(), 0.1 * (0.01 / 0.1));
    let e = sched.lr(2).unwrap_err();
    assert_eq!(invalid_field(&e), "group");
    assert!(e.to_string().contains("no param group 2"), "{e}");
}

#[test]
fn a_scheduled_lr_the_device_cannot_hold_names_the_schedule_and_the_step() {
    // 2^128 is finite in f64 but not in f32 (the kernels' precision).
    let mut opt = sgd(false, 0.0);
    let mut sched = LrScheduler::new(&mut opt, Schedule::exponential(1.0, 2.0).unwrap()).unwrap();
    sched.set_step(127);
    sched.apply(&mut opt).unwrap();
    let e = sched.advance(&mut opt).unwrap_err();
    assert_eq!(invalid_field(&e), "lr");
    let msg = e.to_string();
    assert!(
        msg.contains("exponential") && msg.contains("at step 128"),
        "{msg}"
    );
    assert_eq!(opt.lrs(), vec![2f64.powi(127)]);
    // NaN, negative, +inf and just above f32::MAX, from a closure.
    for bad in [f64::NAN, -1e-3, f64::INFINITY, f32::MAX as f64 * 1.0001] {
        let s = Schedule::from_fn(std::sync::Arc::new(move |k| if k == 0 { 0.1 } else { bad }));
        let e = s.try_lr(5).unwrap_err();
        assert!(
            e.to_string().contains("from_fn") && e.to_string().contains("at step 5"),
            "{e}"
        );
        let mut sched = LrScheduler::new(&mut opt, s).unwrap();
        assert_eq!(invalid_field(&sched.advance(&mut opt).unwrap_err()), "lr");
        assert_eq!(opt.lrs(), vec![0.1]);
    }
    assert_eq!(
        Schedule::constant(f32::MAX as f64)
            .unwrap()
            .try_lr(0)
            .unwrap(),
        f32::MAX as f64
    );
    // A group ratio can push a valid schedule value out of f32 too.
    let mut opt = sgd(true, 0.0);
    opt.set_lrs(&[1e-30, 1.0]).unwrap();
    let mut sched =
        LrScheduler::new(&mut opt, Schedule::exponential(1e-30, 10.0).unwrap()).unwrap();
    sched.set_step(39);
    let e = sched.apply(&mut opt).unwrap_err();
    assert!(e.to_string().contains("param group 1"), "{e}");
}

#[test]
fn lr_scheduler_drives_every_replica_alike() {
    use wgpu_optim::collective::LocalCommunicator;
    use wgpu_optim::pool::{DataParallel, DevicePool, Replica};
    let pool = DevicePool::logical(3).expect("a Vulkan adapter (lavapipe is fine)");
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    })
    .group(ParamGroup::names(["b"]).lr(0.01));
    let mut dp = pool.replicate(&layout(), &spec).unwrap();
    let oc = Schedule::one_cycle(OneCycleConfig::new(0.1, 12)).unwrap();
    let mut sched = LrScheduler::new_data_parallel(&mut dp, oc.clone()).unwrap();
    let check = |dp: &DataParallel, sched: &LrScheduler, k: u64| {
        let want: Vec<u64> = (0..2).map(|g| sched.lr(g).unwrap().to_bits()).collect();
        assert_eq!(want[0], oc.lr(k).to_bits());
        for (i, r) in dp.replicas().iter().enumerate() {
            let got: Vec<u64> = r.opt.lrs().iter().map(|x| x.to_bits()).collect();
            assert_eq!(got, want, "replica {i} at step {k}");
            assert_eq!(
                Some(sgd_momentum(&r.opt)),
                oc.momentum(k),
                "replica {i} at {k}"
            );
        }
    };
    check(&dp, &sched, 0);
    for k in 1..=5 {
        for r in dp.replicas_mut() {
            r.write_grad("w", &[0.5; 5]).unwrap();
            r.write_grad("b", &[0.5; 3]).unwrap();
        }
        dp.step().unwrap();
        sched.advance_data_parallel(&mut dp).unwrap();
        check(&dp, &sched, k);
    }
    dp.synchronize().unwrap();
    let p0 = dp.replica(0).read_params().unwrap();
    for r in dp.replicas() {
        assert_eq!(r.read_params().unwrap(), p0, "replicas stay equal");
    }
    // Past u64::MAX: refused, nobody changes.
    let before: Vec<Vec<f64>> = dp.replicas().iter().map(|r| r.opt.lrs()).collect();
    let mut stuck = sched.clone();
    stuck.set_step(u64::MAX);
    assert!(stuck.advance_data_parallel(&mut dp).is_err());
    assert_eq!(stuck.step_count(), u64::MAX);
    let after: Vec<Vec<f64>> = dp.replicas().iter().map(|r| r.opt.lrs()).collect();
    assert_eq!(before, after);

    // A replica with another group count: refused naming it, nobody changes.
    let g = pool.gpus();
    let one_group = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    });
    let mixed = |second: &OptimizerSpec| {
        DataParallel::new(
            vec![
                Replica::new(g[0].clone(), &layout(), &spec).unwrap(),
                Replica::new(g[1].clone(), &layout(), second).unwrap(),
            ],
            Box::new(LocalCommunicator::default()),
        )
        .unwrap()
    };
    let mut dp = mixed(&one_group);
    let e = LrScheduler::new_data_parallel(&mut dp, oc.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
    assert!(
        e.to_string()
            .contains("built for 2 param group(s) but replica 1: the optimizer has 1"),
        "{e}"
    );
    assert_eq!(dp.replica(0).opt.lrs(), vec![0.1, 0.01]);
    // Replica 1 has no momentum to cycle: replica 0, written first, is put
    // back (lrs and momentum).
    let plain = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        ..Default::default()
    })
    .group(ParamGroup::names(["b"]).lr(0.01));
    let mut dp = mixed(&plain);
    let e = LrScheduler::new_data_parallel(&mut dp, oc).unwrap_err();
    assert!(e.to_string().contains("replica 1"), "{e}");
    assert_eq!(dp.replica(0).opt.lrs(), vec![0.1, 0.01]);
    assert_eq!(sgd_momentum(&dp.replica(0).opt), 0.9);
    assert_eq!(dp.replica(1).opt.lrs(), vec![0.1, 0.01]);
}
