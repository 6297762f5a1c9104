//! On-device gradient accumulation (`grad::GradAccumulator`): k fresh
//! micro-gradients folded in a fixed order, bitwise the host's f32 sum in
//! the same order; the step then sees the sum (so clipping does too); with
//! data parallelism one all-reduce per window.

mod common;

use common::{Rng, gpu};
use wgpu_optim::grad::GradAccumulator;
use wgpu_optim::optim::{AdamConfig, OptimizerSpec};
use wgpu_optim::pool::DevicePool;
use wgpu_optim::{ErrorKind, Gpu, Optimizer, ParamLayout, ParamSet};

/// Empty, odd and chunk-straddling tensors over 128-element chunks.
fn layout() -> ParamLayout {
    ParamLayout::new(&[
        ("empty", &[0][..]),
        ("odd", &[3][..]),
        ("straddle", &[300][..]),
        ("mat", &[5, 7][..]),
    ])
    .unwrap()
}

fn random(rng: &mut Rng, l: &ParamLayout) -> Vec<Vec<f32>> {
    l.tensors()
        .iter()
        .map(|t| rng.vec(t.numel as usize, 1.0))
        .collect()
}

/// ((g1 + g2) + g3) ... in f32, element by element: what the kernel must give.
fn host_sum(gs: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let mut acc = gs[0].clone();
    for g in &gs[1..] {
        for (a, b) in acc.iter_mut().zip(g) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
    }
    acc
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|t| t.iter().map(|x| x.to_bits()).collect())
        .collect()
}

fn read_grads(gpu: &Gpu, p: &ParamSet, l: &ParamLayout) -> Vec<Vec<f32>> {
    l.tensors()
        .iter()
        .map(|t| p.read_grad(gpu, &t.name).unwrap())
        .collect()
}

#[test]
fn k_micro_gradients_sum_bitwise_and_the_step_sees_the_sum() {
    let gpu = gpu();
    let l = layout();
    let mut rng = Rng(11);
    let p0 = random(&mut rng, &l);
    let spec = OptimizerSpec::adam(AdamConfig {
        lr: 0.01,
        ..Default::default()
    })
    .clip_by_global_norm(1.0);
    let mut params = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
    let mut acc = GradAccumulator::new(gpu, &params, 3).unwrap();
    let mut direct = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
    direct.write_all(gpu, &p0).unwrap();
    let mut opt_direct = Optimizer::new(gpu, &spec, &direct).unwrap();
    // Two windows: the second starts afresh (nothing of the first is kept).
    for window in 0..2 {
        let gs: Vec<_> = (0..3).map(|_| random(&mut rng, &l)).collect();
        for (j, g) in gs.iter().enumerate() {
            params.write_grads_all(gpu, g).unwrap();
            let full = acc.add(gpu, &mut params).unwrap();
            assert_eq!(full, j == 2, "window {window} micro-batch {j}");
            assert_eq!(acc.pending(), ((j + 1) % 3) as u32);
        }
        let sum = host_sum(&gs);
        assert_eq!(
            bits(&read_grads(gpu, &params, &l)),
            bits(&sum),
            "window {window}"
        );
        opt.step(gpu, &mut params).unwrap();
        direct.write_grads_all(gpu, &sum).unwrap();
        opt_direct.step(gpu, &mut direct).unwrap();
        assert_eq!(
            bits(&params.read_all(gpu).unwrap()),
            bits(&direct.read_all(gpu).unwrap()),
            "window {window}: the step (with clipping) sees the sum"
        );
    }
}

#[test]
fn one_micro_batch_changes_nothing_and_bad_use_is_refused() {
    let gpu = gpu();
    let l = layout();
    let mut rng = Rng(12);
    let mut params = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
    let g = random(&mut rng, &l);
    params.write_grads_all(gpu, &g).unwrap();
    let mut one = GradAccumulator::new(gpu, &params, 1).unwrap();
    assert!(one.add(gpu, &mut params).unwrap());
    assert_eq!(bits(&read_grads(gpu, &params, &l)), bits(&g));

    let e = GradAccumulator::new(gpu, &params, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("accumulation_steps"), "{e}");

    let mut acc = GradAccumulator::new(gpu, &params, 2).unwrap();
    let mut other = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
    let e = acc.add(gpu, &mut other).unwrap_err();
    assert!(e.to_string().contains("built for ParamSet"), "{e}");
    assert_eq!(acc.pending(), 0, "a refused add folds nothing");
}

/// Two logical devices, k = 2: each replica folds its micro-batches, then
/// one `DataParallel::step` all-reduces once; bitwise the step on the
/// host-summed gradients.
#[test]
fn data_parallel_accumulates_locally_and_reduces_once() {
    let l = layout();
    let spec = OptimizerSpec::adam(AdamConfig::default());
    let pool = DevicePool::logical(2).expect("a Vulkan adapter (lavapipe is fine)");
    let mut dp = pool.replicate(&l, &spec).unwrap();
    let mut plain = pool.replicate(&l, &spec).unwrap();
    let mut rng = Rng(13);
    let p0 = random(&mut rng, &l);
    for d in [&mut dp, &mut plain] {
        for r in d.replicas_mut() {
            r.params.write_all(&r.gpu, &p0).unwrap();
        }
    }
    let mut accs: Vec<_> = dp
        .replicas()
        .iter()
        .map(|r| GradAccumulator::new(&r.gpu, &r.params, 2).unwrap())
        .collect();
    // micro[device] = that device's two micro-batch gradients.
    let micro: Vec<Vec<_>> = (0..2)
        .map(|_| (0..2).map(|_| random(&mut rng, &l)).collect())
        .collect();
    for j in [0, 1] {
        for ((r, acc), mine) in dp.replicas_mut().iter_mut().zip(&mut accs).zip(&micro) {
            r.params.write_grads_all(&r.gpu, &mine[j]).unwrap();
            assert_eq!(acc.add(&r.gpu, &mut r.params).unwrap(), j == 1);
        }
    }
    dp.step().unwrap();
    for (r, mine) in plain.replicas_mut().iter_mut().zip(&micro) {
        r.params.write_grads_all(&r.gpu, &host_sum(mine)).unwrap();
    }
    plain.step().unwrap();
    for (a, b) in dp.replicas().iter().zip(plain.replicas()) {
        assert_eq!(
            bits(&a.params.read_all(&a.gpu).unwrap()),
            bits(&b.params.read_all(&b.gpu).unwrap())
        );
    }
}
