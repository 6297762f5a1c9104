//! bf16 and f16 gradients around the step: the gradient pipeline reads
//! them exactly (clipping, the guard, an f16 overflow under GradScaler),
//! gradient accumulation sums them in f32 and rounds once, and the
//! all-reduce moves them in their dtype and sums in f32.

mod common;

use common::half::{B16, F16, F32, grads_in, mixed_layout, options};
use common::{Rng, gpu, random_tensors as random};
use wgpu_optim::grad::{GradAccumulator, GradScalerConfig, LossScale, NonFinite};
use wgpu_optim::optim::*;
use wgpu_optim::{Optimizer, ParamDtype, ParamSet};

/// The gradient pipeline reads bf16 / f16 gradients exactly: a step with
/// clipping by global norm, per-group clipping by value, and the guard on
/// 16-bit gradients is bitwise the step on f32 gradients of the same
/// values. Then f16 gradients whose scaled values overflow f16 (the
/// backward pass wrote infinities) are skipped by GradScaler, which halves
/// its scale, and the params do not move.
#[test]
fn sixteen_bit_gradients_through_clipping_the_guard_and_the_loss_scale() {
    let gpu = gpu();
    let layout = mixed_layout();
    let mut rng = Rng(41);
    let p0 = random(&mut rng, &layout, 1.0);
    for dtype in [B16, F16] {
        let g: Vec<Vec<f32>> = grads_in(dtype, &mut rng, &layout)
            .into_iter()
            .map(|t| t.iter().map(|&x| dtype.round(x * 8.0)).collect())
            .collect();
        let spec = OptimizerSpec::adam(AdamConfig::default())
            .clip_by_global_norm(0.5)
            .clip_by_value(3.0)
            .nonfinite(NonFinite::Skip);
        let run = |grad: ParamDtype| {
            let mut params =
                ParamSet::with_options(gpu, &layout, options(F32, grad, Some(1024))).unwrap();
            params.write_all(gpu, &p0).unwrap();
            params.write_grads_all(gpu, &g).unwrap();
            let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
            opt.step(gpu, &mut params).unwrap();
            let stats = opt.stats(gpu).unwrap();
            (params.read_all(gpu).unwrap(), stats.norms)
        };
        let (a, b) = (run(dtype), run(F32));
        assert_eq!(a.1, b.1, "{dtype:?}: the norms differ");
        let bits = |v: &Vec<Vec<f32>>| -> Vec<Vec<u32>> {
            v.iter()
                .map(|t| t.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&a.0), bits(&b.0), "{dtype:?}: the steps differ");
    }
    // GradScaler with f16 gradients: an overflow skips the step.
    let scale = GradScalerConfig {
        init_scale: 1024.0,
        ..Default::default()
    };
    let spec = OptimizerSpec::sgd(SgdConfig::default()).loss_scale(LossScale::Dynamic(scale));
    let mut params = ParamSet::with_options(gpu, &layout, options(F16, F16, None)).unwrap();
    params.write_all(gpu, &p0).unwrap();
    let before = params.read_all(gpu).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    // 100 x 1024 overflows f16 (65504): the backward pass wrote infinity.
    let mut g = grads_in(F16, &mut rng, &layout);
    g[0][3] = 100.0 * 1024.0;
    params.write_grads_all(gpu, &g).unwrap();
    assert_eq!(params.read_grad(gpu, "w").unwrap()[3], f32::INFINITY);
    opt.step(gpu, &mut params).unwrap();
    let stats = opt.stats(gpu).unwrap();
    assert_eq!(stats.skipped_steps, 1, "the overflow was not skipped");
    assert_eq!(stats.loss_scale, 512.0, "GradScaler did not back off");
    assert_eq!(
        params.read_all(gpu).unwrap(),
        before,
        "a skipped step moved the params"
    );
}

/// Gradient accumulation over bf16 gradients sums in f32 and rounds once:
/// the grads after 3 micro-batches are `bf16((g1 + g2) + g3)`, bitwise.
#[test]
fn accumulation_sums_in_f32_and_rounds_once() {
    let gpu = gpu();
    let layout = mixed_layout();
    let mut rng = Rng(51);
    for dtype in [B16, F16] {
        let mut params =
            ParamSet::with_options(gpu, &layout, options(F32, dtype, Some(1024))).unwrap();
        let mut acc = GradAccumulator::new(gpu, &params, 3).unwrap();
        let micro: Vec<_> = (0..3).map(|_| grads_in(dtype, &mut rng, &layout)).collect();
        for (i, g) in micro.iter().enumerate() {
            params.write_grads_all(gpu, g).unwrap();
            assert_eq!(acc.add(gpu, &mut params).unwrap(), i == 2);
        }
        for (k, t) in layout.tensors().iter().enumerate() {
            let want: Vec<u32> = (0..t.numel as usize)
                .map(|e| {
                    dtype
                        .round((micro[0][k][e] + micro[1][k][e]) + micro[2][k][e])
                        .to_bits()
                })
                .collect();
            let got: Vec<u32> = params
                .read_grad(gpu, &t.name)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert_eq!(got, want, "{dtype:?}: {}", t.name);
        }
    }
}

/// The all-reduce moves bf16 gradients in bf16 and sums them in f32 on the
/// host: after it every replica holds `bf16(g0 + g1)`, bitwise, over
/// buckets of 256 bytes (so tensors are cut across buckets).
#[test]
fn all_reduce_moves_sixteen_bit_gradients() {
    use wgpu_optim::collective::{CollectiveConfig, LocalCommunicator};
    use wgpu_optim::pool::{DataParallel, DevicePool, Replica};
    let pool = DevicePool::logical(2).expect("two logical devices");
    let layout = mixed_layout();
    let spec = OptimizerSpec::sgd(SgdConfig::default());
    let replicas: Vec<Replica> = pool
        .gpus()
        .iter()
        .map(|g| {
            Replica::with_options(g.clone(), &layout, &spec, options(F32, B16, Some(1024))).unwrap()
        })
        .collect();
    let config = CollectiveConfig {
        bucket_bytes: 256,
        ..Default::default()
    };
    let mut dp =
        DataParallel::new(replicas, Box::new(LocalCommunicator::new(config).unwrap())).unwrap();
    let mut rng = Rng(61);
    let g: Vec<_> = (0..2).map(|_| grads_in(B16, &mut rng, &layout)).collect();
    for (r, gr) in g.iter().enumerate() {
        let rep = dp.replica_mut(r);
        rep.params.write_grads_all(&rep.gpu, gr).unwrap();
    }
    dp.all_reduce_grads().unwrap();
    for r in 0..2 {
        let rep = dp.replica(r);
        for (k, t) in layout.tensors().iter().enumerate() {
            let want: Vec<u32> = (0..t.numel as usize)
                .map(|e| B16.round(g[0][k][e] + g[1][k][e]).to_bits())
                .collect();
            let got: Vec<u32> = rep
                .params
                .read_grad(&rep.gpu, &t.name)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert_eq!(got, want, "replica {r}: {}", t.name);
        }
    }
}
