//! `wgpu-optim-bench`: runs wgpu-optim's fused optimizer steps on every
//! adapter of every wgpu backend (Vulkan, Metal, DX12, GL) and reports
//! params/s, GB/s and the ratio to a same-device copy kernel moving the same
//! bytes (the device's streaming roofline), as a table, JSON and an SVG chart.
//!
//! ```text
//! wgpu-optim-bench --quick                       # every adapter, small sizes
//! wgpu-optim-bench --backend vulkan --json out.json --svg out.svg
//! wgpu-optim-bench --adapter llvmpipe --max-size 2^22 --reps 5
//! ```
//!
//! Exit status: 0 when every selected adapter ran; 1 when no adapter was
//! found or could run, or one failed during the run (the JSON and SVG then
//! hold what was measured); 2 for invalid arguments.

mod allreduce;
mod big;
mod cli;
mod report;
mod suite;
mod svg;

use std::io::{IsTerminal, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use cli::{Args, fmt_size, max_elems_for};
use report::{AdapterReport, Report, Settings, Skipped};

/// Why the run stopped, with the exit status to return.
struct Failure {
    code: u8,
    message: String,
}

/// Invalid arguments: exit status 2, like clap's own errors.
fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// The run could not be done or failed: exit status 1.
fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version come here too, and succeed.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("wgpu-optim-bench: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Opens `path` for writing before anything runs, so a bad path fails fast.
fn create(path: &Path, flag: &str) -> Result<std::fs::File, Failure> {
    std::fs::File::create(path)
        .map_err(|e| usage(format!("cannot write {flag} {}: {e}", path.display())))
}

fn write_out(file: std::fs::File, path: &Path, text: &str) -> Result<(), Failure> {
    let mut w = std::io::BufWriter::new(file);
    w.write_all(text.as_bytes())
        .and_then(|_| w.flush())
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn run(args: &Args) -> Result<(), Failure> {
    let plan = args.plan().map_err(usage)?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let t_run = Instant::now();

    // Adapters: every one on the chosen backends, then the name filter.
    let backends = args.backend.backends();
    let built = wgpu::Instance::enabled_backend_features();
    if !built.intersects(backends) {
        return Err(failed(format!(
            "no GPU adapter found: this build of wgpu has no {:?} backend on this platform \
             (it has {built:?}); try --backend all",
            args.backend
        )));
    }
    let instance = wgpu_optim::gpu::instance_for(backends);
    let found = pollster::block_on(instance.enumerate_adapters(backends));
    if found.is_empty() {
        let e = wgpu_optim::Error::NoAdapter {
            reason: format!("no adapter on backend(s) {backends:?}"),
        };
        return Err(failed(e.to_string()));
    }
    let adapters: Vec<wgpu::Adapter> = match &args.adapter {
        None => found,
        Some(want) => {
            let names: Vec<String> = found
                .iter()
                .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
                .collect();
            let lc = want.to_lowercase();
            let keep: Vec<wgpu::Adapter> = found
                .into_iter()
                .filter(|a| a.get_info().name.to_lowercase().contains(&lc))
                .collect();
            if keep.is_empty() {
                return Err(failed(format!(
                    "no adapter name contains {want:?}; found: {}",
                    names.join(", ")
                )));
            }
            keep
        }
    };

    // Sizes against what each adapter can hold, before anything runs. The
    // requested maximum is checked, not only the largest size of the sweep,
    // so that a --max-size past the limit is refused, never rounded down.
    if let Some(largest) = plan.sizes.last().map(|&l| l.max(plan.max_size)) {
        for a in &adapters {
            let max = max_elems_for(&a.limits());
            if largest > max {
                let info = a.get_info();
                return Err(usage(format!(
                    "--max-size {}: a single tensor of {} f32 elements ({} bytes) does not fit \
                     adapter {:?} ({:?}), whose max_buffer_size is {} bytes ({} elements at most); \
                     pass --max-size {} or less, or --adapter to choose another adapter",
                    fmt_size(plan.max_size),
                    fmt_size(largest),
                    largest * 4,
                    info.name,
                    info.backend,
                    a.limits().max_buffer_size,
                    max,
                    fmt_size(1u64 << max.ilog2()),
                )));
            }
        }
    }

    let json_file = args
        .json
        .as_ref()
        .map(|p| create(p, "--json"))
        .transpose()?;
    let svg_file = args.svg.as_ref().map(|p| create(p, "--svg")).transpose()?;

    let per_adapter = suite::jobs_per_adapter(&plan);
    let target = if args.no_progress || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let pb = ProgressBar::with_draw_target(Some(per_adapter * adapters.len() as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.enable_steady_tick(Duration::from_millis(250));

    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    for adapter in &adapters {
        let info = adapter.get_info();
        let tag = format!("{} ({:?})", info.name, info.backend);
        let t_adapter = Instant::now();
        pb.set_message(format!("{tag}: opening"));
        let opened = suite::open(adapter, plan.timing);
        let (gpu, clock, note) = match opened {
            Ok(o) => o,
            Err(e) => {
                pb.suspend(|| eprintln!("skipping {tag}: {e}"));
                skipped.push(Skipped {
                    name: info.name.clone(),
                    backend: format!("{:?}", info.backend),
                    reason: e.to_string(),
                });
                pb.inc(per_adapter);
                continue;
            }
        };
        let mut rep = AdapterReport::new(&info, gpu.limits());
        rep.timing = clock.method();
        rep.timing_note = note;
        let before = pb.position();
        let result = catch_unwind(AssertUnwindSafe(|| {
            suite::run_adapter(&gpu, &clock, &plan, &pb, &tag)
        }));
        rep.duration_s = t_adapter.elapsed().as_secs_f64();
        let error = match result {
            Ok(Ok(ms)) => {
                rep.measurements = ms;
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(format!("internal error (panic): {}", panic_message(&*p))),
        };
        pb.set_position(before + per_adapter);
        match error {
            None => {
                pb.suspend(|| {
                    print!("{}", report::table(&rep));
                    let _ = std::io::stdout().flush();
                });
                reports.push(rep);
            }
            Some(e) => {
                pb.suspend(|| eprintln!("benchmark failed on {tag}: {e}"));
                errors.push(format!("{tag}: {e}"));
                skipped.push(Skipped {
                    name: info.name.clone(),
                    backend: format!("{:?}", info.backend),
                    reason: format!("failed during the run: {e}"),
                });
            }
        }
    }
    pb.finish_and_clear();

    let all_reduce = allreduce::all_reduce_section(&adapters, &plan, args.quick);
    report::print_all_reduce(&all_reduce);
    let report = Report {
        schema: report::SCHEMA,
        crate_version: env!("CARGO_PKG_VERSION"),
        started_at: report::rfc3339(started.as_secs()),
        started_unix_s: started.as_secs(),
        duration_s: t_run.elapsed().as_secs_f64(),
        settings: Settings {
            quick: args.quick,
            backend: format!("{:?}", args.backend).to_lowercase(),
            adapter_filter: args.adapter.clone(),
            timing: format!("{:?}", args.timing).to_lowercase(),
            sizes: plan.sizes.clone(),
            reps: plan.reps,
        },
        sections: vec![all_reduce],
        adapters: reports,
        skipped_adapters: skipped,
    };
    if let (Some(file), Some(path)) = (json_file, &args.json) {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| failed(format!("cannot encode the JSON report: {e}")))?;
        write_out(file, path, &text)?;
    }
    if let (Some(file), Some(path)) = (svg_file, &args.svg) {
        let title = format!(
            "wgpu-optim {} fused step throughput ({})",
            report.crate_version, report.started_at
        );
        let chart = svg::render(&report.adapters, &title).map_err(failed)?;
        write_out(file, path, &chart)?;
    }
    eprintln!(
        "ran {} adapter(s) in {:.1} s{}{}",
        report.adapters.len(),
        report.duration_s,
        args.json
            .as_ref()
            .map_or(String::new(), |p| format!("; JSON: {}", p.display())),
        args.svg
            .as_ref()
            .map_or(String::new(), |p| format!("; SVG: {}", p.display())),
    );
    if !errors.is_empty() {
        return Err(failed(format!(
            "the benchmark failed on {} adapter(s): {}",
            errors.len(),
            errors.join("; ")
        )));
    }
    if report.adapters.is_empty() {
        let reasons: Vec<String> = report
            .skipped_adapters
            .iter()
            .map(|s| format!("{} ({}): {}", s.name, s.backend, s.reason))
            .collect();
        return Err(failed(format!(
            "no adapter could run the benchmark: {}",
            reasons.join("; ")
        )));
    }
    Ok(())
}
