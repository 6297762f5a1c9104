//! The report: a table per adapter for people, JSON for machines.

use std::fmt::Write as _;

use serde::Serialize;

use crate::allreduce::Section;
use crate::cli::fmt_size;
use crate::suite::{Measurement, TimingMethod};

/// Version of the JSON layout below; bumped when a field changes meaning.
pub const SCHEMA: &str = "wgpu-optim-bench/1";

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The version of wgpu-optim (from Cargo.toml).
    pub crate_version: &'static str,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
    /// How long the whole run took, seconds.
    pub duration_s: f64,
    /// The settings that shaped the run.
    pub settings: Settings,
    /// One entry per adapter that ran.
    pub adapters: Vec<AdapterReport>,
    /// Adapters that were found but did not run, with the reason.
    pub skipped_adapters: Vec<Skipped>,
    /// Sections that span adapters (the all-reduce section, empty for now).
    pub sections: Vec<Section>,
}

/// The settings of the run.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// `--quick` was given.
    pub quick: bool,
    /// The `--backend` value.
    pub backend: String,
    /// The `--adapter` filter.
    pub adapter_filter: Option<String>,
    /// `--timing`: `auto` or `wall`.
    pub timing: String,
    /// Single-tensor sizes in elements.
    pub sizes: Vec<u64>,
    /// Timed repetitions per case (after one warm-up).
    pub reps: usize,
}

/// An adapter that was not benchmarked.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// The adapter's name.
    pub name: String,
    /// Its backend.
    pub backend: String,
    /// Why.
    pub reason: String,
}

/// The results on one adapter.
#[derive(Debug, Serialize)]
pub struct AdapterReport {
    /// The adapter's name.
    pub name: String,
    /// `Vulkan`, `Metal`, `Dx12` or `Gl`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version string.
    pub driver_info: String,
    /// PCI vendor id (0 when unknown).
    pub vendor: u32,
    /// PCI device id (0 when unknown).
    pub device: u32,
    /// How steps were timed.
    pub timing: TimingMethod,
    /// Why that method (feature present, absent, or refused).
    pub timing_note: String,
    /// `max_buffer_size` in bytes.
    pub max_buffer_size: u64,
    /// `max_storage_buffer_binding_size` in bytes (the chunk size).
    pub max_storage_buffer_binding_size: u64,
    /// Seconds spent on this adapter.
    pub duration_s: f64,
    /// Every measurement, in the order made.
    pub measurements: Vec<Measurement>,
}

impl AdapterReport {
    /// The adapter's fields from `info`, with no measurements yet.
    pub fn new(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> AdapterReport {
        AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            vendor: info.vendor,
            device: info.device,
            timing: TimingMethod::WallClock,
            timing_note: String::new(),
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            duration_s: 0.0,
            measurements: Vec::new(),
        }
    }

    /// `backend: name`, for labels.
    pub fn label(&self) -> String {
        format!("{}: {}", self.backend, self.name)
    }
}

/// The table of one adapter, for the terminal.
pub fn table(a: &AdapterReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== {} | {} | {} | driver {} {}",
        a.name, a.backend, a.device_type, a.driver, a.driver_info
    );
    let reps = a.measurements.first().map_or(0, |m| m.reps);
    let _ = writeln!(
        s,
        "timing: {} ({}); medians of {reps} interleaved runs; {:.1} s",
        a.timing.describe(),
        a.timing_note,
        a.duration_s
    );
    let _ = writeln!(
        s,
        "step/copy: step time over the time of a same-device copy kernel moving the same bytes (1.00 = at the copy roofline)"
    );
    let _ = writeln!(
        s,
        "B/p: bytes a step reads and writes per parameter; held: device bytes per parameter (params, grads, states with their absmax, the optimizer's tables)"
    );
    let _ = writeln!(
        s,
        "{:<22} {:<9} {:>9} {:<10} {:<17} {:>6} {:>6} {:>9} {:>9} {:>10} {:>7} {:>9} {:>9}  note",
        "optimizer",
        "layout",
        "params",
        "dispatch",
        "params/states",
        "B/p",
        "held",
        "time ms",
        "wall ms",
        "Mparams/s",
        "GB/s",
        "copy GB/s",
        "step/copy"
    );
    for m in &a.measurements {
        let params = if m.layout == "single" {
            fmt_size(m.params)
        } else {
            m.params.to_string()
        };
        let dtypes = match m.param_update.as_str() {
            "nearest" => format!("{}/{}", m.param_dtype, m.state_dtype),
            u => format!("{}/{}+{u}", m.param_dtype, m.state_dtype),
        };
        let note = match (&m.baseline, m.ratio_to_baseline) {
            (Some(b), Some(r)) => format!("{r:.2}x {b}"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "{:<22} {:<9} {:>9} {:<10} {:<17} {:>6.2} {:>6.2} {:>9.3} {:>9.3} {:>10.2} {:>7.3} {:>9.3} {:>9.2}  {}",
            m.optimizer,
            m.layout,
            params,
            m.dispatch,
            dtypes,
            m.bytes_per_param,
            m.device_bytes_per_param,
            m.time_s * 1e3,
            m.wall_s * 1e3,
            m.params_per_s / 1e6,
            m.gb_per_s,
            m.copy.gb_per_s,
            m.ratio_to_copy,
            note
        );
    }
    s
}

/// `secs` since the Unix epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Prints the all-reduce section: time and bandwidth (nccl-tests style),
/// then the parts run alone and the all-reduce over the slowest of them
/// (1.0: perfect overlap) and over their sum (1.0: none).
pub fn print_all_reduce(section: &Section) {
    if section.measurements.is_empty() {
        return;
    }
    println!(
        "\n== all-reduce (ReduceOp::Sum through host memory, fixed device order, {} KiB buckets)",
        section.measurements[0].bucket_bytes >> 10
    );
    println!(
        "{:<28} {:>2} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>10}",
        "adapter",
        "n",
        "MiB",
        "time ms",
        "busbw",
        "down ms",
        "sum ms",
        "up ms",
        "/slowest",
        "/sum parts",
        "bus/mcpy",
        "gather ms"
    );
    for m in &section.measurements {
        println!(
            "{:<28} {:>2} {:>9} {:>9.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.2} {:>9.2} {:>8.3} {:>10.3}",
            m.adapter.chars().take(28).collect::<String>(),
            m.devices,
            m.bytes >> 20,
            m.time_s * 1e3,
            m.busbw_gb_s,
            m.download_s * 1e3,
            m.sum_s * 1e3,
            m.upload_s * 1e3,
            m.ratio_to_slowest_part,
            m.ratio_to_parts_sum,
            m.busbw_gb_s / m.memcpy_gb_s,
            m.gather_s * 1e3
        );
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
