//! ZeRO stage 1 across the devices of one process
//! (`DevicePool::replicate_sharded`, `Optimizer::sharded`): every replica's
//! params bitwise those of the unsharded run (global-norm clipping and the
//! non-finite guard included, per-tensor optimizers and bf16 params with
//! master weights too), the optimizer memory per device falling as 8 / N
//! for Adam, each replica's shard checkpointed and resumed bitwise, and
//! the errors.

mod common;

use common::{Rng, random_tensors as random};
use wgpu_optim::checkpoint::{self, TrainingState};
use wgpu_optim::grad::NonFinite;
use wgpu_optim::optim::state::StateDtype;
use wgpu_optim::optim::*;
use wgpu_optim::pool::{DataParallel, DevicePool, Replica, shard_tensors};
use wgpu_optim::{ErrorKind, Optimizer, ParamDtype, ParamLayout, ParamSetOptions, ParamUpdate};

fn pool(n: usize) -> DevicePool {
    match DevicePool::logical(n) {
        Ok(p) => p,
        Err(e) => panic!("data-parallel tests need a Vulkan adapter (lavapipe is fine): {e}"),
    }
}

/// Matrices (one across chunks of 2048), vectors, a tiny and an empty
/// tensor.
fn layout() -> ParamLayout {
    ParamLayout::new(&[
        ("embed", &[64, 40][..]),
        ("h0.w", &[40, 40][..]),
        ("h0.b", &[40][..]),
        ("empty", &[0][..]),
        ("h1.w", &[40, 48][..]),
        ("h1.b", &[48][..]),
        ("t", &[3][..]),
    ])
    .unwrap()
}

fn options(dtype: ParamDtype) -> ParamSetOptions {
    ParamSetOptions {
        param_dtype: dtype,
        grad_dtype: dtype,
        chunk_elems: Some(2048),
    }
}

/// A run of `spec` on `pool` over `layout()` in `o`'s dtypes, sharded or
/// not, from the params `p0` (written into replica 0, then broadcast).
fn started(
    pool: &DevicePool,
    spec: &OptimizerSpec,
    o: ParamSetOptions,
    sharded: bool,
    p0: &[Vec<f32>],
) -> DataParallel {
    let l = layout();
    let mut dp = if sharded {
        pool.replicate_sharded(&l, spec, o).unwrap()
    } else {
        pool.replicate_as(&l, spec, o).unwrap()
    };
    dp.replica_mut(0)
        .params
        .write_all(&pool.gpus()[0], p0)
        .unwrap();
    dp.broadcast_params_from_0().unwrap();
    dp
}

/// Per step, one gradient per replica.
type Grads = Vec<Vec<Vec<Vec<f32>>>>;

/// Random params, and the gradients of `steps` steps for each of `n`
/// replicas.
fn random_run(seed: u64, n: usize, steps: usize) -> (Vec<Vec<f32>>, Grads) {
    let l = layout();
    let mut rng = Rng(seed);
    let p0 = random(&mut rng, &l, 1.0);
    let grads = (0..steps)
        .map(|_| (0..n).map(|_| random(&mut rng, &l, 0.5)).collect())
        .collect();
    (p0, grads)
}

/// Writes one step's gradients (one per replica) and steps.
fn step_with(dp: &mut DataParallel, grads: &[Vec<Vec<f32>>]) -> wgpu_optim::Result<()> {
    for (r, g) in grads.iter().enumerate() {
        let rep = dp.replica_mut(r);
        rep.params.write_grads_all(&rep.gpu, g).unwrap();
    }
    dp.step()
}

/// Every replica's params as f32.
fn all_params(dp: &DataParallel) -> Vec<Vec<Vec<f32>>> {
    (0..dp.len())
        .map(|r| dp.replica(r).read_params().unwrap())
        .collect()
}

/// Runs `steps` steps of `spec` data-parallel on `n` devices, sharded or
/// not, each replica writing its own gradients (a NaN in step 2's, which
/// the guard must skip everywhere), and returns every replica's params as
/// stored after each step.
fn run(
    n: usize,
    spec: &OptimizerSpec,
    dtype: ParamDtype,
    sharded: bool,
    steps: usize,
) -> Vec<Vec<Vec<Vec<u8>>>> {
    let pool = pool(n);
    let l = layout();
    let mut dp = if sharded {
        pool.replicate_sharded(&l, spec, options(dtype)).unwrap()
    } else {
        pool.replicate_as(&l, spec, options(dtype)).unwrap()
    };
    assert_eq!(dp.shard_owners().is_some(), sharded);
    let mut rng = Rng(5);
    let p0 = random(&mut rng, &l, 1.0);
    dp.replica_mut(0)
        .params
        .write_all(&pool.gpus()[0], &p0)
        .unwrap();
    dp.broadcast_params_from_0().unwrap();
    let mut out = Vec::new();
    for s in 0..steps {
        for r in 0..n {
            let mut g = random(&mut rng, &l, 0.5);
            if s == 2 && r == n - 1 {
                g[4][7] = f32::NAN;
            }
            let rep = dp.replica_mut(r);
            rep.params.write_grads_all(&rep.gpu, &g).unwrap();
        }
        dp.step().unwrap();
        out.push(
            (0..n)
                .map(|r| {
                    let rep = dp.replica(r);
                    l.tensors()
                        .iter()
                        .map(|t| rep.params.read_raw(&rep.gpu, &t.name).unwrap())
                        .collect()
                })
                .collect(),
        );
    }
    out
}

/// Sharded and unsharded runs agree bitwise on every replica after every
/// step, on 2 and 3 devices: AdamW with 8-bit states, clipping by global
/// norm and the guard (a NaN on one device skips the step on all); LAMB
/// (per-tensor trust ratios); Muon with AdamW on the vectors; bf16 params
/// with f32 master weights.
#[test]
fn sharded_steps_equal_unsharded_bitwise() {
    let adamw = OptimizerSpec::adamw(AdamWConfig {
        lr: 1e-2,
        ..Default::default()
    })
    .state_dtype(StateDtype::Blockwise8)
    .min_8bit_size(1000)
    .clip_by_global_norm(0.5)
    .nonfinite(NonFinite::Skip);
    let lamb = OptimizerSpec::lamb(LambConfig::default()).clip_by_global_norm(1.0);
    let muon = OptimizerSpec::muon(MuonConfig::default())
        .group(ParamGroup::names(["h0.b", "h1.b", "t", "empty"]).algorithm(AdamWConfig::default()));
    let master = adamw.clone().param_update(ParamUpdate::MasterWeights);
    for (name, spec, dtype) in [
        ("adamw", &adamw, ParamDtype::F32),
        ("lamb", &lamb, ParamDtype::F32),
        ("muon", &muon, ParamDtype::F32),
        ("bf16 master", &master, ParamDtype::Bf16),
    ] {
        for n in [2, 3] {
            let plain = run(n, spec, dtype, false, 4);
            let sharded = run(n, spec, dtype, true, 4);
            for (s, (a, b)) in plain.iter().zip(&sharded).enumerate() {
                for r in 0..n {
                    assert_eq!(a[r], b[r], "{name}, {n} devices, step {s}, replica {r}");
                }
                assert_eq!(b[0], b[n - 1], "{name}: replicas differ");
            }
            // Step 2 was skipped (a NaN on the last device) where the
            // guard is on: its params equal step 1's.
            if name == "adamw" {
                assert_eq!(sharded[2], sharded[1], "{name}: the NaN step moved params");
                assert_ne!(sharded[3], sharded[2], "{name}: step 3 did not move");
            }
        }
    }
}

/// Adam's optimizer memory per device on N devices: the params and grads
/// (8 bytes per parameter) everywhere, the states (8) divided by N, plus
/// the optimizer's tables and uniform; measured per replica on a layout of
/// four 256 x 256 matrices (shards of equal size).
#[test]
fn sharded_states_divide_memory() {
    use wgpu_optim::bench::device_bytes_per_param;
    let l = ParamLayout::new(&[
        ("a", &[256, 256][..]),
        ("b", &[256, 256][..]),
        ("c", &[256, 256][..]),
        ("d", &[256, 256][..]),
    ])
    .unwrap();
    let spec = OptimizerSpec::adam(AdamConfig::default());
    for n in [1usize, 2, 4] {
        let dp = pool(n)
            .replicate_sharded(&l, &spec, ParamSetOptions::default())
            .unwrap();
        for r in 0..n {
            let held = device_bytes_per_param(&dp.replica(r).opt);
            let want = 8.0 + 8.0 / n as f64;
            println!("{n} devices, replica {r}: {held:.3} bytes per param (8 + 8/N = {want})");
            // Tables and the uniform buffer: well under 0.2 B/param here.
            assert!((want..want + 0.2).contains(&held), "{n}: {held}");
        }
    }
    assert_eq!(shard_tensors(&l, 4), vec![0, 1, 2, 3]);
    assert_eq!(shard_tensors(&l, 2), vec![0, 0, 1, 1]);
    assert_eq!(shard_tensors(&l, 1), vec![0; 4]);
    // Contiguous and in order, whatever the sizes; more devices than
    // tensors leaves shards empty.
    let owners = shard_tensors(&layout(), 3);
    assert!(owners.windows(2).all(|w| w[0] <= w[1]), "{owners:?}");
    assert_eq!(shard_tensors(&layout(), 100).len(), 7);
}

/// Each replica saves its own checkpoint (all params, its shard's states);
/// fresh sharded replicas load them and continue bitwise as the
/// uninterrupted run. A shard's file is refused by an unsharded optimizer
/// (it lacks the other shards' states), and nothing changes.
#[test]
fn each_replica_checkpoints_its_shard_and_resumes_bitwise() {
    let n = 2;
    let spec = OptimizerSpec::adamw(AdamWConfig::default()).clip_by_global_norm(1.0);
    let l = layout();
    let pool = pool(n);
    let (p0, grads) = random_run(8, n, 4);
    let fresh = || started(&pool, &spec, options(ParamDtype::F32), true, &p0);
    let steps = |dp: &mut DataParallel, range: std::ops::Range<usize>| {
        for g in &grads[range] {
            step_with(dp, g).unwrap();
        }
    };
    let params = all_params;
    let mut whole = fresh();
    steps(&mut whole, 0..4);
    let mut first = fresh();
    steps(&mut first, 0..2);
    let dir = std::env::temp_dir();
    let path = |r: usize| {
        dir.join(format!(
            "wgpu-optim-shard-{}-{r}.safetensors",
            std::process::id()
        ))
    };
    for r in 0..n {
        let rep = first.replica_mut(r);
        checkpoint::save(
            &path(r),
            &rep.gpu,
            &rep.params,
            &mut rep.opt,
            &TrainingState::default(),
        )
        .unwrap();
    }
    let mut resumed = fresh();
    for r in 0..n {
        let rep = resumed.replica_mut(r);
        checkpoint::load(&path(r), &rep.gpu, &mut rep.params, &mut rep.opt).unwrap();
    }
    steps(&mut resumed, 2..4);
    let bits = |v: Vec<Vec<Vec<f32>>>| -> Vec<u32> {
        v.concat().concat().iter().map(|x| x.to_bits()).collect()
    };
    assert_eq!(bits(params(&resumed)), bits(params(&whole)));
    // Replica 0's shard into an unsharded optimizer: refused.
    let mut plain =
        Replica::with_options(pool.gpus()[0].clone(), &l, &spec, options(ParamDtype::F32)).unwrap();
    let before = plain.read_params().unwrap();
    let e = checkpoint::load(&path(0), &plain.gpu, &mut plain.params, &mut plain.opt).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Checkpoint, "{e}");
    assert!(e.to_string().contains("state."), "{e}");
    assert_eq!(plain.read_params().unwrap(), before);
    for r in 0..n {
        std::fs::remove_file(path(r)).ok();
    }
}

/// Shards that overlap, leave a tensor out, or mix with unsharded replicas
/// are refused when the replicas are joined; a mask of the wrong length
/// when the optimizer is built.
#[test]
fn bad_shards_are_refused() {
    use wgpu_optim::collective::LocalCommunicator;
    let pool = pool(2);
    let l = layout();
    let spec = OptimizerSpec::sgd(SgdConfig::default());
    let o = ParamSetOptions::default();
    let rep = |r: usize, owned: &[bool]| {
        Replica::sharded(pool.gpus()[r].clone(), &l, &spec, o, owned).unwrap()
    };
    let all = vec![true; 7];
    let none = vec![false; 7];
    let mut half = vec![false; 7];
    half[..4].fill(true);
    let comm = || Box::new(LocalCommunicator::default());
    let e = DataParallel::new(vec![rep(0, &all), rep(1, &half)], comm()).unwrap_err();
    assert!(e.to_string().contains("shards of replicas 0 and 1"), "{e}");
    let e = DataParallel::new(vec![rep(0, &half), rep(1, &none)], comm()).unwrap_err();
    assert!(e.to_string().contains("h1.w"), "{e}");
    let plain = Replica::new(pool.gpus()[1].clone(), &l, &spec).unwrap();
    let e = DataParallel::new(vec![rep(0, &all), plain], comm()).unwrap_err();
    assert!(e.to_string().contains("replicas[1]"), "{e}");
    let params = wgpu_optim::ParamSet::new(&pool.gpus()[0], &l).unwrap();
    let e = Optimizer::sharded(&pool.gpus()[0], &spec, &params, &[true; 3]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch);
    // Schedule-Free's eval swap cannot run on a shard.
    let sf = OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig::default());
    let e = Optimizer::sharded(&pool.gpus()[0], &sf, &params, &half).unwrap_err();
    assert!(e.to_string().contains("unsharded"), "{e}");
    // An optimizer of a shard keeps no states for the other tensors.
    let r = rep(0, &half);
    assert!(r.opt.owns("embed").unwrap() && !r.opt.owns("h1.w").unwrap());
    let adam = OptimizerSpec::adam(AdamConfig::default());
    let opt = Optimizer::sharded(&pool.gpus()[0], &adam, &params, &half).unwrap();
    assert_eq!(
        opt.tensor_state_names("embed").unwrap(),
        vec!["exp_avg", "exp_avg_sq"]
    );
    assert!(opt.tensor_state_names("h1.w").unwrap().is_empty());
    assert!(opt.read_state(&pool.gpus()[0], "exp_avg", "h1.w").is_err());
}

/// One gathered file for a sharded run (`checkpoint::save_gathered`: each
/// tensor's states and master from its owner) holds the tensors and
/// metadata of the file the unsharded run saves after the same steps,
/// byte for byte; an unsharded run resumes
/// from the gathered file and a sharded run from the unsharded file
/// (`load_gathered`), both bitwise as the uninterrupted run. bf16 params
/// with f32 master weights, 8-bit states, clipping; 2 devices. A file of
/// another optimizer is refused by every replica and nothing changes.
#[test]
fn gathered_checkpoints_cross_between_sharded_and_unsharded_runs() {
    use wgpu_optim::checkpoint::{LoadOptions, load_gathered, save_gathered};
    let n = 2;
    let spec = OptimizerSpec::adamw(AdamWConfig::default())
        .state_dtype(StateDtype::Blockwise8)
        .min_8bit_size(1000)
        .param_update(ParamUpdate::MasterWeights)
        .clip_by_global_norm(1.0);
    let l = layout();
    let pool = pool(n);
    let (p0, grads) = random_run(13, n, 4);
    let fresh = |sharded: bool| started(&pool, &spec, options(ParamDtype::Bf16), sharded, &p0);
    let steps = |dp: &mut DataParallel, range: std::ops::Range<usize>| {
        for g in &grads[range] {
            step_with(dp, g).unwrap();
        }
    };
    let bits = |dp: &DataParallel| -> Vec<Vec<u8>> {
        (0..n)
            .flat_map(|r| {
                let rep = dp.replica(r);
                l.tensors()
                    .iter()
                    .map(|t| rep.params.read_raw(&rep.gpu, &t.name).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    let (plain_file, gathered_file) = (
        dir.join(format!("wgpu-optim-gather-{pid}-plain.safetensors")),
        dir.join(format!("wgpu-optim-gather-{pid}-gathered.safetensors")),
    );
    let mut whole = fresh(false);
    steps(&mut whole, 0..4);
    let mut u = fresh(false);
    steps(&mut u, 0..2);
    let rep = u.replica_mut(0);
    checkpoint::save(
        &plain_file,
        &rep.gpu,
        &rep.params,
        &mut rep.opt,
        &TrainingState::default(),
    )
    .unwrap();
    let mut sh = fresh(true);
    steps(&mut sh, 0..2);
    save_gathered(&gathered_file, &sh, &TrainingState::default()).unwrap();
    // The same tensors with the same bytes and the same metadata (the
    // safetensors header lists the metadata keys in a HashMap's order, so
    // the files' bytes may differ there).
    let (a, b) = (
        std::fs::read(&plain_file).unwrap(),
        std::fs::read(&gathered_file).unwrap(),
    );
    let (fa, fb) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    let (mut na, mut nb) = (fa.names(), fb.names());
    na.sort();
    nb.sort();
    assert_eq!(na, nb, "the gathered file holds other tensors");
    for n in na {
        let (x, y) = (fa.tensor(n).unwrap(), fb.tensor(n).unwrap());
        assert_eq!(
            (x.dtype(), x.shape(), x.data()),
            (y.dtype(), y.shape(), y.data()),
            "{n}"
        );
    }
    let meta = |bytes: &[u8]| safetensors::SafeTensors::read_metadata(bytes).unwrap().1;
    assert_eq!(
        meta(&a).metadata(),
        meta(&b).metadata(),
        "the metadata differ"
    );
    // The unsharded file into a sharded run, the gathered one into an
    // unsharded run: both continue as the uninterrupted run.
    let mut s2 = fresh(true);
    load_gathered(&plain_file, &mut s2, LoadOptions::default()).unwrap();
    steps(&mut s2, 2..4);
    assert_eq!(
        bits(&s2),
        bits(&whole),
        "sharded run from the unsharded file"
    );
    let mut u2 = fresh(false);
    for r in 0..n {
        let rep = u2.replica_mut(r);
        checkpoint::load(&gathered_file, &rep.gpu, &mut rep.params, &mut rep.opt).unwrap();
    }
    steps(&mut u2, 2..4);
    assert_eq!(
        bits(&u2),
        bits(&whole),
        "unsharded run from the gathered file"
    );
    // A file of another optimizer: every replica refuses, nothing changes.
    let other = dir.join(format!("wgpu-optim-gather-{pid}-sgd.safetensors"));
    let sgd = OptimizerSpec::sgd(SgdConfig::default());
    let mut o =
        Replica::with_options(pool.gpus()[0].clone(), &l, &sgd, options(ParamDtype::Bf16)).unwrap();
    checkpoint::save(
        &other,
        &o.gpu,
        &o.params,
        &mut o.opt,
        &TrainingState::default(),
    )
    .unwrap();
    let mut s3 = fresh(true);
    let before = bits(&s3);
    let e = load_gathered(&other, &mut s3, LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("replica 0"), "{e}");
    assert_eq!(bits(&s3), before);
    for f in [plain_file, gathered_file, other] {
        std::fs::remove_file(f).ok();
    }
}

/// A read that fails in the gather of a sharded step (a fault injected on
/// replica 1 as a lost device's read): the step returns a collective error
/// naming the gather and the device; nothing was written anywhere, so each
/// replica holds its own shard's updated params and the other shard's of
/// the step before (what `DataParallel::step` documents); the next step is
/// refused, saying why, until every replica is restored from one
/// checkpoint; after `load_gathered` the run goes on bitwise as one that
/// never failed. On 3 devices, each replica's own file and
/// `mark_restored` serve as well.
#[test]
fn a_failed_gather_errors_everywhere_and_refuses_steps_until_restored() {
    use wgpu_optim::checkpoint::{LoadOptions, load_gathered, save_gathered};
    let spec = OptimizerSpec::adamw(AdamWConfig {
        lr: 1e-2,
        ..Default::default()
    })
    .clip_by_global_norm(1.0);
    for n in [2usize, 3] {
        let pool = pool(n);
        let (p0, grads) = random_run(21, n, 4);
        let fresh = || started(&pool, &spec, ParamSetOptions::default(), true, &p0);
        let params = all_params;
        let mut whole = fresh();
        for g in &grads {
            step_with(&mut whole, g).unwrap();
        }
        let mut dp = fresh();
        step_with(&mut dp, &grads[0]).unwrap();
        let file = std::env::temp_dir().join(format!(
            "wgpu-optim-gather-fault-{}-{n}.safetensors",
            std::process::id()
        ));
        save_gathered(&file, &dp, &TrainingState::default()).unwrap();
        let before = params(&dp);
        let owners = dp.shard_owners().unwrap().to_vec();
        // The same step as the uninterrupted run's second, on a copy that
        // gathers: what each owner's shard becomes.
        let mut twin = fresh();
        step_with(&mut twin, &grads[0]).unwrap();
        step_with(&mut twin, &grads[1]).unwrap();
        let after = params(&twin);

        dp.inject_gather_fault(1);
        let e = step_with(&mut dp, &grads[1]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Collective, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("gather params") && msg.contains("device 1"),
            "{msg}"
        );
        assert!(dp.diverged().is_some());
        let now = params(&dp);
        for r in 0..n {
            for (k, &o) in owners.iter().enumerate() {
                let want = if o == r { &after[r][k] } else { &before[r][k] };
                assert!(
                    bits_eq(&now[r][k], want),
                    "{n} devices: replica {r}, tensor {k} (owner {o})"
                );
            }
        }
        // Refused, naming why, and nothing changes.
        let e = step_with(&mut dp, &grads[2]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Collective, "{e}");
        assert!(
            e.to_string().contains("refused") && e.to_string().contains("gather params"),
            "{e}"
        );
        assert!(
            params(&dp)
                .iter()
                .flatten()
                .zip(now.iter().flatten())
                .all(|(a, b)| bits_eq(a, b)),
            "a refused step changed params"
        );
        // Restored from the file saved after step 1: steps 2..4 go on as
        // the uninterrupted run.
        if n == 2 {
            load_gathered(&file, &mut dp, LoadOptions::default()).unwrap();
        } else {
            // Each replica its own shard's file (saved from a run at the
            // same step), then mark_restored.
            let mut src = fresh();
            step_with(&mut src, &grads[0]).unwrap();
            for r in 0..n {
                let f = file.with_extension(format!("shard{r}"));
                let rep = src.replica_mut(r);
                checkpoint::save(
                    &f,
                    &rep.gpu,
                    &rep.params,
                    &mut rep.opt,
                    &TrainingState::default(),
                )
                .unwrap();
                let rep = dp.replica_mut(r);
                checkpoint::load(&f, &rep.gpu, &mut rep.params, &mut rep.opt).unwrap();
                std::fs::remove_file(f).ok();
            }
            assert!(dp.step().is_err(), "steps before mark_restored");
            dp.mark_restored();
        }
        assert!(dp.diverged().is_none());
        for g in &grads[1..] {
            step_with(&mut dp, g).unwrap();
        }
        let (got, want) = (params(&dp), params(&whole));
        assert!(
            got.iter()
                .flatten()
                .zip(want.iter().flatten())
                .all(|(a, b)| bits_eq(a, b)),
            "{n} devices: the restored run differs from the uninterrupted one"
        );
        std::fs::remove_file(file).ok();
    }
}

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
