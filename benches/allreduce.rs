//! nccl-tests-style table of the in-process all-reduce (`LocalCommunicator`)
//! for N = 2 and 4 logical devices on the first Vulkan adapter, message sizes
//! 1 MiB .. 256 MiB, next to the host's memcpy bandwidth measured in the
//! same run.
//!
//! * time: median wall time of one `all_reduce_sum` over every device,
//!   including the wait until the uploads have landed on every device;
//! * algbw = bytes / time; busbw = algbw * 2 (n - 1) / n (nccl-tests'
//!   definition for all-reduce, comparable across N).
//!
//! Environment: `ALLREDUCE_MAX_MIB` caps the largest message (default 256),
//! `ALLREDUCE_BUCKET_MIB` sets the bucket size (default 16),
//! `ALLREDUCE_DEVICES` the device counts (default `2,4`).
//!
//! `cargo bench --bench allreduce`

use std::time::{Duration, Instant};

use wgpu_optim::ParamSet;
use wgpu_optim::bench::single_tensor_layout;
use wgpu_optim::collective::{CollectiveConfig, Communicator, LocalCommunicator};
use wgpu_optim::pool::DevicePool;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Host memcpy bandwidth (bytes copied per second) for `bytes`-sized copies
/// between two warm buffers, best of several.
fn memcpy_bw(bytes: usize) -> f64 {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best
}

fn main() {
    let max_mib = env_u64("ALLREDUCE_MAX_MIB", 256).max(1);
    let bucket_mib = env_u64("ALLREDUCE_BUCKET_MIB", 16).max(1);
    let counts: Vec<usize> = std::env::var("ALLREDUCE_DEVICES")
        .unwrap_or_else(|_| "2,4".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let memcpy = memcpy_bw((64usize << 20).min((max_mib as usize) << 20));
    let pool = DevicePool::logical(*counts.iter().max().unwrap_or(&2)).expect("a Vulkan adapter");
    let info = pool.gpus()[0].info();
    println!(
        "# adapter: {} ({:?}, {:?}); {} host threads; buckets of {bucket_mib} MiB",
        info.name,
        info.backend,
        info.device_type,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "# host memcpy bandwidth (64 MiB copies, best of 8): {:.2} GB/s",
        memcpy / 1e9
    );
    for &n in &counts {
        println!("#\n# N = {n} devices");
        println!(
            "# {:>12} {:>12} {:>10} {:>9} {:>9} {:>12}",
            "bytes", "elements", "time(ms)", "algbw", "busbw", "busbw/memcpy"
        );
        let gpus = &pool.gpus()[..n];
        let mut mib = 1u64;
        while mib <= max_mib {
            let bytes = mib << 20;
            let elems = (bytes / 4) as usize;
            let layout = single_tensor_layout(elems);
            let sets: Vec<ParamSet> = gpus
                .iter()
                .map(|g| {
                    let mut p = ParamSet::new(g, &layout).unwrap();
                    p.write_grad(g, "w", &vec![1.0; elems]).unwrap();
                    p
                })
                .collect();
            let local: Vec<_> = gpus.iter().zip(&sets).collect();
            let mut comm = LocalCommunicator::new(CollectiveConfig {
                bucket_bytes: bucket_mib << 20,
                ..Default::default()
            })
            .unwrap();
            let run = |comm: &mut LocalCommunicator| {
                comm.all_reduce_sum(&local).unwrap();
                for g in gpus {
                    g.synchronize().unwrap();
                }
            };
            run(&mut comm); // builds the staging buffers
            let iters = (256 / mib).clamp(3, 10);
            let times: Vec<Duration> = (0..iters)
                .map(|_| {
                    let t = Instant::now();
                    run(&mut comm);
                    t.elapsed()
                })
                .collect();
            let t = median(times).as_secs_f64();
            let algbw = bytes as f64 / t / 1e9;
            let busbw = algbw * 2.0 * (n as f64 - 1.0) / n as f64;
            println!(
                "  {:>12} {:>12} {:>10.2} {:>9.2} {:>9.2} {:>12.2}",
                bytes,
                elems,
                t * 1e3,
                algbw,
                busbw,
                busbw * 1e9 / memcpy
            );
            drop(sets);
            mib *= 2;
        }
    }
}
