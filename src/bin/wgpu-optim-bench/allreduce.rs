//! The all-reduce section of the harness: pools of logical devices
//! all-reduce one tensor of each size, interleaved with the all-reduce's
//! parts run alone (downloads, host sums, uploads) and with the params'
//! gather of a run with sharded optimizer state.

use serde::Serialize;
use wgpu_optim::Gpu;
use wgpu_optim::bench::single_tensor_layout;
use wgpu_optim::optim::{OptimizerSpec, SgdConfig};

use crate::cli::Plan;
use crate::suite::median;

/// One all-reduce measurement, nccl-tests style.
#[derive(Debug, Clone, Serialize)]
pub struct AllReduceRow {
    /// The adapter the logical devices were opened on.
    pub adapter: String,
    /// Its backend.
    pub backend: String,
    /// Devices in the pool.
    pub devices: usize,
    /// Bytes per device (f32 gradients).
    pub bytes: u64,
    /// f32 elements per device.
    pub elements: u64,
    /// Median wall time of one all-reduce (download, fixed-order host sum,
    /// upload), seconds.
    pub time_s: f64,
    /// `bytes / time_s` in GB/s.
    pub algbw_gb_s: f64,
    /// `algbw * 2 (n - 1) / n` in GB/s.
    pub busbw_gb_s: f64,
    /// Host memcpy bandwidth measured in the same run, GB/s.
    pub memcpy_gb_s: f64,
    /// Bytes per bucket (the pipelining's unit).
    pub bucket_bytes: u64,
    /// The all-reduce's parts, each run alone in the same run (interleaved
    /// with the all-reduce, medians): every device's downloads until all
    /// are mapped, seconds.
    pub download_s: f64,
    /// The fixed-order host sums of every bucket over the mapped memory.
    pub sum_s: f64,
    /// The uploads to every device, until every device has finished.
    pub upload_s: f64,
    /// `time_s` over the slowest part: 1.0 is perfect overlap.
    pub ratio_to_slowest_part: f64,
    /// `time_s` over the parts' sum: 1.0 is no overlap at all.
    pub ratio_to_parts_sum: f64,
    /// With the optimizer state sharded over the devices (ZeRO-1), the
    /// params' gather after a step alone: `bytes` of params in one tensor
    /// per device, each copied from its owner into the others (one read per
    /// owner, `n - 1` writes of it), until every device has finished,
    /// seconds (median, interleaved with the all-reduce).
    pub gather_s: f64,
    /// `gather_s / time_s`.
    pub gather_to_all_reduce: f64,
}

/// A named group of measurements that is not per optimizer.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// The section's name.
    pub name: String,
    /// Its measurements.
    pub measurements: Vec<AllReduceRow>,
}

/// Host memcpy bandwidth (GB/s) over a `bytes` buffer, best of a few runs.
fn memcpy_gb_s(bytes: usize) -> f64 {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best / 1e9
}

/// Bytes per bucket of the all-reduce section: 4 MiB, so that 16 and 64 MiB
/// messages pipeline over 4 and 16 buckets.
const ALL_REDUCE_BUCKET: u64 = 4 << 20;

/// The all-reduce section: for each Vulkan adapter (the GL backend cannot
/// share a process between devices), pools of 2 and 4 logical devices
/// all-reduce one tensor of each size (1 MiB upwards; up to 16 MiB with
/// `--quick`, 64 MiB otherwise) in buckets of 4 MiB, interleaved with its
/// parts run alone (downloads, host sums, uploads). Failures become a
/// message on stderr.
pub fn all_reduce_section(adapters: &[wgpu::Adapter], plan: &Plan, quick: bool) -> Section {
    let mut rows = Vec::new();
    let max_mib: u64 = if quick { 16 } else { 64 };
    let memcpy = memcpy_gb_s(64 << 20);
    for adapter in adapters
        .iter()
        .filter(|a| a.get_info().backend == wgpu::Backend::Vulkan)
    {
        let info = adapter.get_info();
        for n in [2usize, 4] {
            let gpus: Result<Vec<Gpu>, _> = (0..n).map(|_| Gpu::from_adapter(adapter)).collect();
            let pool = match gpus.and_then(wgpu_optim::pool::DevicePool::from_gpus) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("all-reduce on {} x{n}: {e}", info.name);
                    continue;
                }
            };
            let mut mib = 1u64;
            while mib <= max_mib {
                let elements = (mib << 20) / 4;
                let layout = single_tensor_layout(elements as usize);
                let spec = OptimizerSpec::sgd(SgdConfig::default());
                let config = wgpu_optim::collective::CollectiveConfig {
                    bucket_bytes: ALL_REDUCE_BUCKET,
                    ..Default::default()
                };
                // The same bytes as n tensors, one per device's shard.
                let names: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
                let shapes: Vec<[usize; 1]> = vec![[elements as usize / n]; n];
                let sharded_layout = wgpu_optim::ParamLayout::new(
                    &names
                        .iter()
                        .zip(&shapes)
                        .map(|(a, s)| (a.as_str(), &s[..]))
                        .collect::<Vec<_>>(),
                );
                let sharded = sharded_layout.and_then(|l| {
                    pool.replicate_sharded(&l, &spec, wgpu_optim::ParamSetOptions::default())
                });
                let measured = pool
                    .replicate_with(&layout, &spec, config)
                    .and_then(|dp| sharded.map(|s| (dp, s)))
                    .and_then(|(mut dp, mut zero)| {
                        let reps = plan.reps.max(3);
                        // Warm-up (staging buffers, first maps), then the
                        // all-reduce and its parts alone, interleaved.
                        dp.all_reduce_grads()?;
                        dp.synchronize()?;
                        zero.gather_params_now()?;
                        zero.synchronize()?;
                        let (mut whole, mut parts, mut gather) =
                            (Vec::new(), Vec::new(), Vec::new());
                        for _ in 0..reps {
                            let t = std::time::Instant::now();
                            dp.all_reduce_grads()?;
                            dp.synchronize()?;
                            whole.push(t.elapsed().as_secs_f64());
                            let t = std::time::Instant::now();
                            zero.gather_params_now()?;
                            zero.synchronize()?;
                            gather.push(t.elapsed().as_secs_f64());
                            let p = dp.time_all_reduce_parts()?.ok_or_else(|| {
                                wgpu_optim::Error::mismatch(
                                    "the local communicator splits its parts",
                                )
                            })?;
                            parts.push(p);
                        }
                        let part = |f: fn(&wgpu_optim::collective::PartTimes) -> f64| {
                            median(parts.iter().map(f).collect())
                        };
                        Ok((
                            median(whole),
                            part(|p| p.download.as_secs_f64()),
                            part(|p| p.sum.as_secs_f64()),
                            part(|p| p.upload.as_secs_f64()),
                            median(gather),
                        ))
                    });
                match measured {
                    Ok((time_s, download_s, sum_s, upload_s, gather_s)) => {
                        let bytes = mib << 20;
                        let algbw = bytes as f64 / time_s / 1e9;
                        rows.push(AllReduceRow {
                            adapter: info.name.clone(),
                            backend: format!("{:?}", info.backend),
                            devices: n,
                            bytes,
                            elements,
                            time_s,
                            algbw_gb_s: algbw,
                            busbw_gb_s: algbw * 2.0 * (n as f64 - 1.0) / n as f64,
                            memcpy_gb_s: memcpy,
                            bucket_bytes: ALL_REDUCE_BUCKET,
                            download_s,
                            sum_s,
                            upload_s,
                            ratio_to_slowest_part: time_s / download_s.max(sum_s).max(upload_s),
                            ratio_to_parts_sum: time_s / (download_s + sum_s + upload_s),
                            gather_s,
                            gather_to_all_reduce: gather_s / time_s,
                        });
                    }
                    Err(e) => eprintln!("all-reduce on {} x{n}, {mib} MiB: {e}", info.name),
                }
                mib *= 4;
            }
        }
    }
    Section {
        name: "all_reduce".into(),
        measurements: rows,
    }
}
