//! Data-parallel training over MPI: every rank opens its own device, holds
//! one replica, and trains a least-squares model on its shard of one batch
//! for a few steps with `ReduceOp::Mean`. Then every rank checks that its
//! parameters are bitwise equal to rank 0's, that the same steps with the
//! optimizer state sharded over the ranks (ZeRO-1) give bitwise the same
//! parameters (and that a read failing in its gather fails the step on
//! every rank, refuses the next until each rank reloads its shard's
//! checkpoint, and then steps alike again), that a fault injected on one
//! rank makes the step fail on every rank with nothing stepped, and that a
//! rank with a different layout is refused on every rank. Exits non-zero on
//! any rank where a check fails.
//!
//! ```text
//! cargo build --features mpi --example mpi_allreduce
//! mpirun --allow-run-as-root --oversubscribe -np 2 target/debug/examples/mpi_allreduce
//! ```
//! Set `MPI_REDUCTION=rank-ordered` to use `MpiReduction::RankOrdered`.

use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};
use wgpu_optim::collective::{CollectiveConfig, MpiCommunicator, MpiReduction};
use wgpu_optim::optim::{AdamConfig, OptimizerSpec};
use wgpu_optim::pool::{DataParallel, Replica, shard_tensors};
use wgpu_optim::{ErrorKind, Gpu, ParamLayout, ParamSetOptions};

const D: usize = 300;
const B: usize = 24;

fn main() {
    let Some(universe) = mpi::initialize() else {
        eprintln!("MPI could not be initialized");
        std::process::exit(2);
    };
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let failures = match run(&universe, rank, size) {
        Ok(f) => f,
        Err(e) => vec![format!("error: {e}")],
    };
    for f in &failures {
        eprintln!("rank {rank}: FAILED: {f}");
    }
    // Every rank learns whether any rank failed, so all exit alike.
    let mine = [i32::from(!failures.is_empty())];
    let mut any = [0i32];
    world.all_reduce_into(
        &mine[..],
        &mut any[..],
        mpi::collective::SystemOperation::max(),
    );
    if rank == 0 {
        println!(
            "{} on {size} ranks",
            if any[0] == 0 { "OK" } else { "FAILED" }
        );
    }
    if any[0] != 0 {
        drop(universe);
        std::process::exit(1);
    }
}

/// A deterministic value in [-1, 1) for index `i` and `seed`.
fn val(i: usize, seed: u64) -> f32 {
    let mut z = (i as u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn run(
    universe: &mpi::environment::Universe,
    rank: usize,
    size: usize,
) -> wgpu_optim::Result<Vec<String>> {
    let world = universe.world();
    let mut failures = Vec::new();
    let reduction = match std::env::var("MPI_REDUCTION").as_deref() {
        Ok("rank-ordered") => MpiReduction::RankOrdered,
        _ => MpiReduction::Native,
    };
    let config = CollectiveConfig {
        bucket_bytes: 512, // several buckets even for this tiny model
        ..Default::default()
    };
    let gpu = Gpu::new_default()?;
    let layout = ParamLayout::new(&[("w", &[D][..]), ("b", &[1][..])])?;
    let spec = OptimizerSpec::adam(AdamConfig {
        lr: 0.05,
        ..Default::default()
    });
    let replica = Replica::new(gpu, &layout, &spec)?;
    let comm = MpiCommunicator::new(universe.world(), config)?.with_reduction(reduction);
    let mut dp = DataParallel::new(vec![replica], Box::new(comm))?;

    // Different initial values on every rank; the broadcast makes them equal.
    let w0: Vec<f32> = (0..D).map(|i| val(i, 100 + rank as u64)).collect();
    dp.replica_mut(0).write_params("w", &w0)?;
    dp.broadcast_params_from_0()?;

    // The batch (same on every rank), rows split across ranks.
    let x: Vec<Vec<f32>> = (0..B)
        .map(|r| (0..D).map(|i| val(r * D + i, 1)).collect())
        .collect();
    let y: Vec<f32> = (0..B).map(|r| val(r, 2)).collect();
    let rows: Vec<usize> = (0..B).filter(|r| r % size == rank).collect();
    let steps = 5;
    let run_steps = |dp: &mut DataParallel| -> wgpu_optim::Result<()> {
        for _ in 0..steps {
            let p = dp.replica(0).read_params()?;
            let (mut gw, mut gb) = (vec![0.0f64; D], 0.0f64);
            for &r in &rows {
                let res: f64 = x[r]
                    .iter()
                    .zip(&p[0])
                    .map(|(&a, &w)| a as f64 * w as f64)
                    .sum::<f64>()
                    + p[1][0] as f64
                    - y[r] as f64;
                for (g, &a) in gw.iter_mut().zip(&x[r]) {
                    *g += res * a as f64 / rows.len().max(1) as f64;
                }
                gb += res / rows.len().max(1) as f64;
            }
            let gw: Vec<f32> = gw.iter().map(|&g| g as f32).collect();
            dp.replica_mut(0).write_grad("w", &gw)?;
            dp.replica_mut(0).write_grad("b", &[gb as f32])?;
            dp.step()?;
        }
        Ok(())
    };
    run_steps(&mut dp)?;

    // 1. Bitwise equal to rank 0: rank 0 broadcasts its parameters.
    let mine = dp.replica(0).read_params()?;
    let flat: Vec<f32> = mine.iter().flatten().copied().collect();
    let mut root = flat.clone();
    world.process_at_rank(0).broadcast_into(&mut root[..]);
    let differ = flat
        .iter()
        .zip(&root)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    if differ != 0 {
        failures.push(format!("{differ} parameters differ from rank 0's"));
    }
    if flat[..D] == w0[..] && rank == 0 {
        failures.push("parameters did not move".into());
    }
    println!(
        "rank {rank}: {steps} steps, {} params, checksum {:#018x}, equal to rank 0: {}",
        flat.len(),
        flat.iter().fold(0u64, |h, x| (h ^ x.to_bits() as u64)
            .wrapping_mul(0x100_0000_01b3)),
        differ == 0
    );

    // 2. Sharded optimizer state (ZeRO-1): each rank keeps the Adam states
    // of its shard of pool::shard_tensors and gathers the others' params;
    // the same steps from the same start give bitwise the same params.
    let owners = shard_tensors(&layout, size);
    let owned: Vec<bool> = owners.iter().map(|&o| o == rank).collect();
    let sharded = Replica::sharded(
        dp.replica(0).gpu.clone(),
        &layout,
        &spec,
        ParamSetOptions::default(),
        &owned,
    )?;
    let comm = MpiCommunicator::new(universe.world(), config)?.with_reduction(reduction);
    let mut zero = DataParallel::new(vec![sharded], Box::new(comm))?;
    if zero.shard_owners() != Some(&owners[..]) {
        failures.push("the sharded run did not agree on the shards".into());
    }
    let w0_rank0: Vec<f32> = (0..D).map(|i| val(i, 100)).collect();
    zero.replica_mut(0).write_params("w", &w0_rank0)?;
    zero.broadcast_params_from_0()?;
    run_steps(&mut zero)?;
    let z: Vec<f32> = zero.replica(0).read_params()?.concat();
    let zdiff = z
        .iter()
        .zip(&flat)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    if zdiff != 0 {
        failures.push(format!(
            "{zdiff} sharded parameters differ from the unsharded run's"
        ));
    }
    println!(
        "rank {rank}: sharded optimizer state (owns {} of {} tensors): bitwise the unsharded \
         params: {}",
        owned.iter().filter(|&&o| o).count(),
        owned.len(),
        zdiff == 0
    );
    // A read failing in the gather on the last rank: the step fails on
    // every rank, the next one is refused until each rank reloads its own
    // shard's checkpoint, and then the ranks step alike again.
    let file = std::env::temp_dir().join(format!(
        "wgpu-optim-mpi-{}-rank{rank}.safetensors",
        std::process::id()
    ));
    {
        let rep = zero.replica_mut(0);
        wgpu_optim::checkpoint::save(
            &file,
            &rep.gpu,
            &rep.params,
            &mut rep.opt,
            &wgpu_optim::checkpoint::TrainingState::default(),
        )?;
    }
    if rank == size - 1 {
        zero.inject_gather_fault(0);
    }
    match run_steps(&mut zero) {
        Ok(()) => failures.push("the step with a failed gather succeeded".into()),
        Err(e) if e.kind() == ErrorKind::Collective => {
            println!("rank {rank}: failed gather reported as expected: {e}");
        }
        Err(e) => failures.push(format!("unexpected error kind for the gather fault: {e}")),
    }
    match zero.step() {
        Err(e) if e.kind() == ErrorKind::Collective && zero.diverged().is_some() => {}
        other => failures.push(format!(
            "a step after a failed gather was not refused: {other:?}"
        )),
    }
    {
        let rep = zero.replica_mut(0);
        wgpu_optim::checkpoint::load(&file, &rep.gpu, &mut rep.params, &mut rep.opt)?;
    }
    std::fs::remove_file(&file).ok();
    zero.mark_restored();
    run_steps(&mut zero)?;
    let z: Vec<f32> = zero.replica(0).read_params()?.concat();
    let mut root = z.clone();
    world.process_at_rank(0).broadcast_into(&mut root[..]);
    if z.iter().zip(&root).any(|(a, b)| a.to_bits() != b.to_bits()) {
        failures.push("after the restore the ranks' params differ".into());
    }
    println!(
        "rank {rank}: restored from its shard's checkpoint after the failed gather, equal to \
         rank 0 after {steps} more steps: {}",
        z.iter().zip(&root).all(|(a, b)| a.to_bits() == b.to_bits())
    );
    drop(zero);
    // A rank without a shard beside ranks with one: refused on every rank.
    let odd = if rank == size - 1 && size > 1 {
        Replica::new(dp.replica(0).gpu.clone(), &layout, &spec)?
    } else {
        Replica::sharded(
            dp.replica(0).gpu.clone(),
            &layout,
            &spec,
            ParamSetOptions::default(),
            &owned,
        )?
    };
    let comm = MpiCommunicator::new(universe.world(), config)?.with_reduction(reduction);
    match DataParallel::new(vec![odd], Box::new(comm)) {
        Ok(_) if size > 1 => failures.push("a rank without a shard was accepted".into()),
        Ok(_) => {}
        Err(e) => println!("rank {rank}: mixed sharding refused as expected: {e}"),
    }

    // 3. A failed map on the last rank: every rank errors, nothing steps.
    let before = dp.replica(0).read_params()?;
    if rank == size - 1 {
        dp.inject_fault(0, 1);
    }
    match dp.step() {
        Ok(()) => failures.push("the step with an injected fault succeeded".into()),
        Err(e) if e.kind() == ErrorKind::Collective => {
            println!("rank {rank}: injected fault reported as expected: {e}");
        }
        Err(e) => failures.push(format!("unexpected error kind for the fault: {e}")),
    }
    if dp.replica(0).read_params()? != before || dp.replica(0).opt.step_count() != steps {
        failures.push("a replica stepped although the all-reduce failed".into());
    }
    // ... and the next step works again.
    dp.step()?;

    // 4. A rank with a different layout is refused on every rank.
    let other = if rank == size - 1 && size > 1 {
        ParamLayout::new(&[("w", &[D + 1][..]), ("b", &[1][..])])?
    } else {
        layout.clone()
    };
    let replica = Replica::new(dp.replica(0).gpu.clone(), &other, &spec)?;
    let comm = MpiCommunicator::new(universe.world(), config)?.with_reduction(reduction);
    match DataParallel::new(vec![replica], Box::new(comm)) {
        Ok(_) if size > 1 => failures.push("a layout mismatch was not detected".into()),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::LayoutMismatch => {
            println!("rank {rank}: layout mismatch refused as expected: {e}");
        }
        Err(e) => failures.push(format!("unexpected error for the layout mismatch: {e}")),
    }
    Ok(failures)
}
