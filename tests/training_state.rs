//! Schedules and early stopping wired to the GPU engine: lrs applied per
//! group without rebuilds or readbacks, momentum cycling, and restore-best
//! weights kept on the device.

mod common;

use common::{gpu, new_gpu};
use wgpu_optim::early_stopping::{BestWeights, EarlyStopping, EarlyStoppingConfig};
use wgpu_optim::optim::*;
use wgpu_optim::schedule::{LrScheduler, OneCycleConfig, Schedule};
use wgpu_optim::{ErrorKind, Optimizer, ParamLayout, ParamSet};

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
        let m = match opt.spec().algorithm() {
            Algorithm::Sgd(c) => c.momentum,
            Algorithm::Adam(c) => c.beta1,
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
