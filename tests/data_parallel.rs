//! Data-parallel training on N logical devices (lavapipe simulates several
//! GPUs through Vulkan): replicas stay bitwise equal, the split batch matches
//! one device on the whole batch, Mean and Sum against the host, layout
//! mismatches refused, faults reported everywhere with nothing stepped.
//!
//! Tensors are tiny: several lavapipe devices share two cores.

mod common;

use common::Rng;
use wgpu_optim::collective::{
    CollectiveConfig, Communicator, LocalCommunicator, ReduceOp, sum_in_order,
};
use wgpu_optim::optim::{AdamConfig, OptimizerSpec, SgdConfig};
use wgpu_optim::pool::{DataParallel, DevicePool, Replica};
use wgpu_optim::{ErrorKind, ParamLayout};

/// A pool of `n` logical Vulkan devices; fails (never skips) without one.
fn pool(n: usize) -> DevicePool {
    match DevicePool::logical(n) {
        Ok(p) => p,
        Err(e) => panic!("data-parallel tests need a Vulkan adapter (lavapipe is fine): {e}"),
    }
}

/// Three tensors, one empty; with 1 KiB buckets the 700-element tensor
/// spans several buckets.
fn layout() -> ParamLayout {
    ParamLayout::new(&[("w", &[100, 7][..]), ("empty", &[0][..]), ("b", &[7][..])]).unwrap()
}

/// Small buckets so every test crosses bucket boundaries.
fn small_buckets() -> CollectiveConfig {
    CollectiveConfig {
        bucket_bytes: 1024,
        reduce_threads: 2,
    }
}

fn random_grads(dp: &mut DataParallel, rng: &mut Rng) -> Vec<Vec<Vec<f32>>> {
    let l = dp.replica(0).params.layout().clone();
    let mut all = Vec::new();
    for r in dp.replicas_mut() {
        let g: Vec<Vec<f32>> = l
            .tensors()
            .iter()
            .map(|t| rng.vec(t.numel as usize, 1.0))
            .collect();
        r.params.write_grads_all(&r.gpu, &g).unwrap();
        all.push(g);
    }
    all
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|t| t.iter().map(|x| x.to_bits()).collect())
        .collect()
}

fn read_all(dp: &DataParallel) -> Vec<Vec<Vec<f32>>> {
    dp.replicas()
        .iter()
        .map(|r| r.read_params().unwrap())
        .collect()
}

#[test]
fn replicas_stay_bitwise_equal_after_k_steps_for_1_2_3_4_devices() {
    let mut rng = Rng(11);
    for n in 1..=4 {
        let spec = OptimizerSpec::adam(AdamConfig {
            lr: 0.01,
            ..Default::default()
        });
        let mut dp = pool(n)
            .replicate_with(&layout(), &spec, small_buckets())
            .unwrap();
        // Different initial values on every replica: the broadcast must fix them.
        for r in dp.replicas_mut() {
            let w = rng.vec(700, 1.0);
            r.write_params("w", &w).unwrap();
        }
        dp.broadcast_params_from_0().unwrap();
        let start = read_all(&dp);
        for p in &start {
            assert_eq!(bits(p), bits(&start[0]), "n={n}: broadcast");
        }
        for _ in 0..3 {
            random_grads(&mut dp, &mut rng);
            dp.step().unwrap();
        }
        let end = read_all(&dp);
        assert_ne!(bits(&end[0]), bits(&start[0]), "n={n}: params moved");
        for (i, p) in end.iter().enumerate() {
            assert_eq!(bits(p), bits(&end[0]), "n={n}: replica {i} differs");
        }
        for r in dp.replicas() {
            assert_eq!(r.opt.step_count(), 3);
        }
    }
}

/// Least squares `loss = 1/(2B) sum_i (x_i . w + b - y_i)^2` over a batch of
/// B = 24; its gradient is the mean of the per-shard gradients of B/N rows,
/// so N devices on shards with `ReduceOp::Mean` follow one device on the
/// whole batch up to f32 rounding.
#[test]
fn split_batch_on_n_devices_matches_one_device_on_the_whole_batch() {
    const B: usize = 24;
    const D: usize = 16;
    let mut rng = Rng(5);
    let x: Vec<Vec<f64>> = (0..B)
        .map(|_| (0..D).map(|_| rng.f32() as f64).collect())
        .collect();
    let y: Vec<f64> = (0..B).map(|_| rng.f32() as f64).collect();
    let layout = ParamLayout::new(&[("w", &[D][..]), ("b", &[1][..])]).unwrap();
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    });
    // Gradient (in f64, rounded to f32 once) of the rows `rows`.
    let grad = |w: &[f32], b: f32, rows: std::ops::Range<usize>| -> (Vec<f32>, f32) {
        let m = rows.len() as f64;
        let (mut gw, mut gb) = (vec![0.0f64; D], 0.0f64);
        for i in rows {
            let r: f64 =
                x[i].iter().zip(w).map(|(a, &c)| a * c as f64).sum::<f64>() + b as f64 - y[i];
            for (g, a) in gw.iter_mut().zip(&x[i]) {
                *g += r * a / m;
            }
            gb += r / m;
        }
        (gw.iter().map(|&g| g as f32).collect(), gb as f32)
    };
    let w0 = rng.vec(D, 0.5);
    let steps = 6;

    // One device, whole batch.
    let single = {
        let mut dp = pool(1).replicate(&layout, &spec).unwrap();
        let r = dp.replica_mut(0);
        r.write_params("w", &w0).unwrap();
        for _ in 0..steps {
            let p = dp.replica(0).read_params().unwrap();
            let (gw, gb) = grad(&p[0], p[1][0], 0..B);
            let r = dp.replica_mut(0);
            r.write_grad("w", &gw).unwrap();
            r.write_grad("b", &[gb]).unwrap();
            dp.step().unwrap();
        }
        dp.replica(0).read_params().unwrap()
    };

    for n in [2, 3, 4] {
        let mut dp = pool(n).replicate(&layout, &spec).unwrap();
        dp.replica_mut(0).write_params("w", &w0).unwrap();
        dp.broadcast_params_from_0().unwrap();
        let shard = B / n;
        for _ in 0..steps {
            let p = dp.replica(0).read_params().unwrap();
            for s in 0..n {
                let (gw, gb) = grad(&p[0], p[1][0], s * shard..(s + 1) * shard);
                let r = dp.replica_mut(s);
                r.write_grad("w", &gw).unwrap();
                r.write_grad("b", &[gb]).unwrap();
            }
            dp.step().unwrap();
        }
        let multi = read_all(&dp);
        for p in &multi {
            assert_eq!(bits(p), bits(&multi[0]), "n={n}: replicas equal");
        }
        // Tolerance: the per-step gradients differ only by f32 rounding:
        // N shard gradients rounded to f32 (2^-24 relative each), summed in
        // f32 (N - 1 more roundings) and scaled by f32(1/N) in the kernel,
        // against one rounding for the full batch: at most about
        // (N + 2) * 2^-24 * max|g| (~4e-7 for |g| <= 1). Through 6 SGD steps
        // with lr 0.1 and momentum 0.9 (sum of lr * momentum-weighted
        // gradients <= 6 * 0.1 * 6 = 3.6 times one gradient's error, plus the
        // parameter roundings of ~2^-24 per step) this stays under 1e-5 with
        // a wide margin for |w| < 2; the feedback through the forward pass
        // is of the same order and cannot reach it in 6 steps.
        let mut worst = 0.0f32;
        for (a, b) in multi[0].iter().flatten().zip(single.iter().flatten()) {
            worst = worst.max((a - b).abs());
        }
        eprintln!("n={n}: max |diff| against one device = {worst:e}");
        assert!(worst <= 1e-5, "n={n}: max |diff| = {worst:e}");
        assert!(
            multi[0][0] != w0,
            "n={n}: params must have moved for the comparison to mean anything"
        );
    }
}

#[test]
fn all_reduce_gives_the_fixed_order_f32_sum_bitwise_and_mean_scales_by_one_over_n() {
    let mut rng = Rng(21);
    // N = 3: not a power of two, so the order of the f32 sum shows.
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 1.0,
        ..Default::default()
    });
    let mut dp = pool(3)
        .replicate_with(&layout(), &spec, small_buckets())
        .unwrap();
    let grads = random_grads(&mut dp, &mut rng);
    dp.all_reduce_grads().unwrap();
    for (k, t) in ["w", "empty", "b"].iter().enumerate() {
        let inputs: Vec<&[f32]> = grads.iter().map(|g| g[k].as_slice()).collect();
        let mut want = vec![0.0; inputs[0].len()];
        // Host oracle, written out: ((g0 + g1) + g2) in f32.
        for (i, w) in want.iter_mut().enumerate() {
            *w = (inputs[0][i] + inputs[1][i]) + inputs[2][i];
        }
        let mut lib = vec![0.0; want.len()];
        sum_in_order(&mut lib, &inputs, 1);
        assert_eq!(bits(&[lib]), bits(std::slice::from_ref(&want)));
        for r in dp.replicas() {
            let got = r.params.read_grad(&r.gpu, t).unwrap();
            assert_eq!(
                bits(&[got]),
                bits(std::slice::from_ref(&want)),
                "tensor {t}"
            );
        }
    }

    // Mean with N = 4: the scale 1/4 is a power of two, so SGD with lr 1
    // from zero params gives exactly -(fixed-order sum) / 4.
    let mut dp = pool(4)
        .replicate_with(&layout(), &spec, small_buckets())
        .unwrap();
    assert_eq!(dp.reduce_op(), ReduceOp::Mean);
    let grads = random_grads(&mut dp, &mut rng);
    dp.step().unwrap();
    let want_w: Vec<f32> = (0..700)
        .map(|i| -((((grads[0][0][i] + grads[1][0][i]) + grads[2][0][i]) + grads[3][0][i]) * 0.25))
        .collect();
    for r in dp.replicas() {
        assert_eq!(
            bits(&[r.read_params().unwrap()[0].clone()]),
            bits(std::slice::from_ref(&want_w))
        );
    }
}

#[test]
fn sum_named_explicitly_leaves_the_scale_at_one() {
    let mut rng = Rng(31);
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 1.0,
        ..Default::default()
    });
    let mut dp = pool(3)
        .replicate_with(&layout(), &spec, small_buckets())
        .unwrap();
    dp.set_reduce_op(ReduceOp::Sum).unwrap();
    let grads = random_grads(&mut dp, &mut rng);
    dp.step().unwrap();
    let want_w: Vec<f32> = (0..700)
        .map(|i| -((grads[0][0][i] + grads[1][0][i]) + grads[2][0][i]))
        .collect();
    for r in dp.replicas() {
        assert_eq!(
            bits(&[r.read_params().unwrap()[0].clone()]),
            bits(std::slice::from_ref(&want_w))
        );
    }
}

#[test]
fn replicas_with_different_layouts_are_refused_before_anything_is_reduced() {
    let p = pool(2);
    let spec = OptimizerSpec::sgd(SgdConfig::default());
    let other = [
        // A shape differs.
        ParamLayout::new(&[("w", &[100, 8][..]), ("empty", &[0][..]), ("b", &[7][..])]).unwrap(),
        // Same tensors, other order.
        ParamLayout::new(&[("b", &[7][..]), ("w", &[100, 7][..]), ("empty", &[0][..])]).unwrap(),
        // A tensor missing.
        ParamLayout::new(&[("w", &[100, 7][..]), ("empty", &[0][..])]).unwrap(),
        // A name differs.
        ParamLayout::new(&[
            ("w", &[100, 7][..]),
            ("empty", &[0][..]),
            ("bias", &[7][..]),
        ])
        .unwrap(),
    ];
    for l in &other {
        let a = Replica::new(p.gpus()[0].clone(), &layout(), &spec).unwrap();
        let b = Replica::new(p.gpus()[1].clone(), l, &spec).unwrap();
        let e = DataParallel::new(vec![a, b], Box::new(LocalCommunicator::default())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
        assert!(e.to_string().contains("replica 1"), "{e}");
    }

    // The communicator on its own refuses too, and leaves the gradients alone.
    let mut a = Replica::new(p.gpus()[0].clone(), &layout(), &spec).unwrap();
    let mut b = Replica::new(p.gpus()[1].clone(), &other[0], &spec).unwrap();
    a.write_grad("b", &[1.0; 7]).unwrap();
    b.write_grad("b", &[2.0; 7]).unwrap();
    let mut comm = LocalCommunicator::new(small_buckets()).unwrap();
    let e = comm
        .all_reduce_sum(&[(&a.gpu, &a.params), (&b.gpu, &b.params)])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
    assert!(e.to_string().contains("`w` [100, 7]"), "{e}");
    assert_eq!(a.params.read_grad(&a.gpu, "b").unwrap(), vec![1.0; 7]);
    assert_eq!(b.params.read_grad(&b.gpu, "b").unwrap(), vec![2.0; 7]);
}

#[test]
fn a_failed_map_on_one_device_errors_for_all_and_no_replica_steps() {
    let mut rng = Rng(41);
    let spec = OptimizerSpec::adam(AdamConfig::default());
    let mut dp = pool(3)
        .replicate_with(&layout(), &spec, small_buckets())
        .unwrap();
    dp.replica_mut(0)
        .write_params("w", &rng.vec(700, 1.0))
        .unwrap();
    dp.broadcast_params_from_0().unwrap();
    random_grads(&mut dp, &mut rng);
    dp.step().unwrap();
    let before = read_all(&dp);

    for (device, bucket) in [(1, 1), (2, 0), (0, 2)] {
        random_grads(&mut dp, &mut rng);
        dp.inject_fault(device, bucket);
        let e = dp.step().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Collective, "{e}");
        assert!(e.to_string().contains(&format!("device {device}")), "{e}");
        let after = read_all(&dp);
        for (i, p) in after.iter().enumerate() {
            assert_eq!(bits(p), bits(&before[i]), "replica {i} changed");
        }
        for r in dp.replicas() {
            assert_eq!(r.opt.step_count(), 1, "no replica stepped");
        }
    }

    // The communicator recovers: the next step works and replicas agree.
    random_grads(&mut dp, &mut rng);
    dp.step().unwrap();
    let after = read_all(&dp);
    assert_ne!(bits(&after[0]), bits(&before[0]));
    for p in &after {
        assert_eq!(bits(p), bits(&after[0]));
    }
}

#[test]
fn a_lost_device_errors_for_all_and_no_replica_steps() {
    let mut rng = Rng(51);
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        ..Default::default()
    });
    let mut dp = pool(3)
        .replicate_with(&layout(), &spec, small_buckets())
        .unwrap();
    random_grads(&mut dp, &mut rng);
    dp.step().unwrap();
    let before: Vec<_> = [0, 2]
        .iter()
        .map(|&i| dp.replica(i).read_params().unwrap())
        .collect();
    random_grads(&mut dp, &mut rng);
    dp.replica(1).gpu.device().destroy();
    let e = dp.step().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Collective, "{e}");
    assert!(e.to_string().contains("device 1"), "{e}");
    for (k, &i) in [0, 2].iter().enumerate() {
        let r = dp.replica(i);
        assert_eq!(r.opt.step_count(), 1);
        assert_eq!(bits(&r.read_params().unwrap()), bits(&before[k]));
    }
}

#[test]
fn staging_buffers_are_created_once() {
    let mut rng = Rng(61);
    let spec = OptimizerSpec::sgd(SgdConfig::default());
    let mut dp = pool(2)
        .replicate_with(&layout(), &spec, small_buckets())
        .unwrap();
    random_grads(&mut dp, &mut rng);
    dp.step().unwrap();
    let counts: Vec<_> = dp
        .replicas()
        .iter()
        .map(|r| r.gpu.creation_counts())
        .collect();
    for _ in 0..3 {
        random_grads(&mut dp, &mut rng);
        dp.step().unwrap();
    }
    dp.synchronize().unwrap();
    for (r, c) in dp.replicas().iter().zip(&counts) {
        assert_eq!(r.gpu.creation_counts(), *c);
    }
}

#[test]
fn bad_pool_and_bucket_options_are_refused() {
    assert_eq!(
        DevicePool::logical(0).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    assert_eq!(
        DevicePool::from_gpus(vec![]).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    let g = pool(1).gpus()[0].clone();
    assert_eq!(
        DevicePool::from_gpus(vec![g.clone(), g])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidConfig
    );
    let bad = CollectiveConfig {
        bucket_bytes: 100,
        ..Default::default()
    };
    assert_eq!(
        LocalCommunicator::new(bad).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}

/// Issue 15: after a replica's ParamSet was swapped through `replicas_mut`,
/// `step` stepped replica 0 and then failed on replica 1. Every replica is
/// now checked before anything is reduced or stepped.
#[test]
fn a_swapped_param_set_on_one_replica_is_refused_before_any_replica_steps() {
    let mut dp = pool(2)
        .replicate(
            &layout(),
            &OptimizerSpec::sgd(SgdConfig {
                lr: 0.1,
                ..Default::default()
            }),
        )
        .unwrap();
    let mut rng = Rng(8);
    random_grads(&mut dp, &mut rng);
    let before = read_all(&dp);
    {
        let r = &mut dp.replicas_mut()[1];
        let fresh = wgpu_optim::ParamSet::new(&r.gpu, &layout()).unwrap();
        r.params = fresh;
    }
    let e = dp.step().unwrap_err();
    assert!(e.to_string().contains("replica 1"), "{e}");
    assert_eq!(
        bits(&read_all(&dp)[0]),
        bits(&before[0]),
        "replica 0 did not step"
    );
    assert!(dp.replicas().iter().all(|r| r.opt.step_count() == 0));
}

/// The all-reduce's parts timed alone (the harness's comparison) leave the
/// gradients as the all-reduce does: bitwise the fixed-order host sum on
/// every replica; each part takes time; one replica has nothing to split.
#[test]
fn timing_the_parts_alone_reduces_like_the_all_reduce() {
    let mut dp = pool(3)
        .replicate_with(
            &layout(),
            &OptimizerSpec::sgd(SgdConfig::default()),
            small_buckets(),
        )
        .unwrap();
    let mut rng = Rng(77);
    let grads = random_grads(&mut dp, &mut rng);
    let parts = dp
        .time_all_reduce_parts()
        .unwrap()
        .expect("a local communicator");
    assert!(parts.download.as_nanos() > 0 && parts.sum.as_nanos() > 0);
    assert!(parts.upload.as_nanos() > 0);
    let names: Vec<String> = layout().tensors().iter().map(|t| t.name.clone()).collect();
    for (k, name) in names.iter().enumerate() {
        let inputs: Vec<&[f32]> = grads.iter().map(|g| g[k].as_slice()).collect();
        let mut want = vec![0.0; grads[0][k].len()];
        sum_in_order(&mut want, &inputs, 2);
        for r in dp.replicas() {
            let got = r.params.read_grad(&r.gpu, name).unwrap();
            assert_eq!(bits(&[got]), bits(&[want.clone()]), "{name}");
        }
    }
    let mut one = pool(1)
        .replicate(&layout(), &OptimizerSpec::sgd(SgdConfig::default()))
        .unwrap();
    assert!(one.time_all_reduce_parts().unwrap().is_none());
}
