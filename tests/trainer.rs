//! `Trainer`, the handle that owns the device, is the low-level API
//! underneath: the same steps give bitwise the same params.

mod common;

use common::{Rng, new_gpu};
use wgpu_optim::optim::{AdamWConfig, OptimizerSpec, ScheduleFreeAdamWConfig};
use wgpu_optim::schedule::{LrScheduler, Schedule};
use wgpu_optim::{Optimizer, ParamLayout, ParamSet, Trainer};

#[test]
fn trainer_steps_are_bitwise_the_low_level_steps_with_the_schedule() {
    let layout = ParamLayout::new(&[("w", &[33, 7][..]), ("b", &[7][..])]).unwrap();
    let spec = OptimizerSpec::adamw(AdamWConfig {
        lr: 0.01,
        ..Default::default()
    })
    .clip_by_global_norm(0.5);
    let schedule = Schedule::warmup_cosine(0.01, 2, 6, 1e-4).unwrap();
    let mut rng = Rng(3);
    let p0: Vec<Vec<f32>> = layout
        .tensors()
        .iter()
        .map(|t| rng.vec(t.numel as usize, 1.0))
        .collect();
    let grads: Vec<Vec<Vec<f32>>> = (0..5)
        .map(|_| {
            layout
                .tensors()
                .iter()
                .map(|t| rng.vec(t.numel as usize, 0.5))
                .collect()
        })
        .collect();

    let mut trainer = Trainer::new(new_gpu(), &layout, &spec)
        .unwrap()
        .with_schedule(schedule.clone())
        .unwrap();
    for (k, t) in layout.tensors().iter().enumerate() {
        trainer.write(&t.name, &p0[k]).unwrap();
    }
    for g in &grads {
        for (k, t) in layout.tensors().iter().enumerate() {
            trainer.write_grad(&t.name, &g[k]).unwrap();
        }
        trainer.step().unwrap();
    }

    let gpu = new_gpu();
    let mut params = ParamSet::new(&gpu, &layout).unwrap();
    params.write_all(&gpu, &p0).unwrap();
    let mut opt = Optimizer::new(&gpu, &spec, &params).unwrap();
    let mut sched = LrScheduler::new(&mut opt, schedule).unwrap();
    for g in &grads {
        params.write_grads_all(&gpu, g).unwrap();
        opt.step(&gpu, &mut params).unwrap();
        sched.advance(&mut opt).unwrap();
    }
    for t in layout.tensors() {
        let a: Vec<u32> = trainer
            .read(&t.name)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        let b: Vec<u32> = params
            .read(&gpu, &t.name)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(a, b, "{}", t.name);
    }
    assert_eq!(trainer.optimizer().step_count(), 5);
    assert_eq!(trainer.optimizer().lrs(), opt.lrs());
    assert!(trainer.stats().unwrap().norms[0] > 0.0);
}

/// `Trainer::eval` / `train` are the optimizer's Schedule-Free swaps: the
/// same bits as the low-level calls, and a step in eval mode is refused.
#[test]
fn trainer_eval_and_train_are_the_schedule_free_swaps() {
    let layout = ParamLayout::new(&[("w", &[9, 4][..])]).unwrap();
    let spec = OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig {
        lr: 0.01,
        ..Default::default()
    });
    let mut rng = Rng(5);
    let p0 = rng.vec(36, 1.0);
    let g: Vec<Vec<f32>> = (0..3).map(|_| rng.vec(36, 0.5)).collect();
    let mut trainer = Trainer::new(new_gpu(), &layout, &spec).unwrap();
    trainer.write("w", &p0).unwrap();
    let gpu = new_gpu();
    let mut params = ParamSet::new(&gpu, &layout).unwrap();
    params.write(&gpu, "w", &p0).unwrap();
    let mut opt = Optimizer::new(&gpu, &spec, &params).unwrap();
    for gk in &g {
        trainer.write_grad("w", gk).unwrap();
        trainer.step().unwrap();
        params.write_grad(&gpu, "w", gk).unwrap();
        opt.step(&gpu, &mut params).unwrap();
    }
    trainer.eval().unwrap();
    opt.eval(&gpu, &mut params).unwrap();
    let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(trainer.read("w").unwrap()),
        bits(params.read(&gpu, "w").unwrap())
    );
    assert_ne!(trainer.read("w").unwrap(), p0);
    assert!(trainer.step().is_err(), "a step in eval mode");
    trainer.train().unwrap();
    opt.train(&gpu, &mut params).unwrap();
    assert_eq!(
        bits(trainer.read("w").unwrap()),
        bits(params.read(&gpu, "w").unwrap())
    );
    assert!(trainer.step().is_ok());
}
