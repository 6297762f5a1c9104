//! The benchmark harness binary, run as a user would: a quick run on Vulkan
//! with JSON and SVG output, and the ways bad input is refused. Like every
//! GPU test here, the quick run fails (never skips) without an adapter.
#![cfg(feature = "cli")]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wgpu-optim-bench");

/// Runs the harness; kills it and fails after `limit` (so a check that
/// should refuse up front cannot start a long benchmark instead).
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the harness binary starts");
    let start = Instant::now();
    while child.try_wait().expect("wait for the harness").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("collect output");
            panic!(
                "wgpu-optim-bench {args:?} ran past {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

/// Bad input is refused before anything runs: well within 30 s.
fn run(args: &[&str]) -> Output {
    run_within(args, Duration::from_secs(30))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wgpu-optim-bench-{}-{name}", std::process::id()))
}

/// Every optimizer the harness runs: the bench list, which holds every
/// registered optimizer.
fn optimizers() -> Vec<&'static str> {
    let v: Vec<&str> = wgpu_optim::bench::standard_optimizers()
        .iter()
        .map(|o| o.0)
        .collect();
    assert!(v.len() >= 8 && v.contains(&"adamax"), "{v:?}");
    v
}

#[test]
fn quick_vulkan_run_reports_every_optimizer_in_json_and_svg() {
    let json = tmp("quick.json");
    let svg = tmp("quick.svg");
    // --quick takes about 10 s on lavapipe; the bound allows a loaded machine.
    let o = run_within(
        &[
            "--quick",
            "--big",
            "--backend",
            "vulkan",
            "--no-progress",
            "--json",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    );
    assert!(
        o.status.success(),
        "the quick run must succeed (it needs a Vulkan adapter; install mesa-vulkan-drivers \
         for lavapipe); status {:?}, stderr:\n{}",
        o.status,
        stderr(&o)
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("step/copy"), "table:\n{table}");

    let text = std::fs::read_to_string(&json).expect("the JSON file was written");
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["schema"], "wgpu-optim-bench/1");
    assert_eq!(v["crate_version"], env!("CARGO_PKG_VERSION"));
    let started = v["started_at"].as_str().expect("started_at");
    assert!(started.ends_with('Z') && started.len() == 20, "{started}");
    assert_eq!(v["settings"]["quick"], true);
    assert_eq!(v["settings"]["backend"], "vulkan");
    let sizes: Vec<u64> = v["settings"]["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![1 << 16, 1 << 18]);
    assert_eq!(v["sections"][0]["name"], "all_reduce");
    let ar = v["sections"][0]["measurements"].as_array().unwrap();
    assert!(!ar.is_empty(), "the all-reduce section measured something");
    for row in ar {
        for key in [
            "devices",
            "bytes",
            "elements",
            "time_s",
            "algbw_gb_s",
            "busbw_gb_s",
            "memcpy_gb_s",
            "bucket_bytes",
            "download_s",
            "sum_s",
            "upload_s",
            "ratio_to_slowest_part",
            "ratio_to_parts_sum",
            "gather_s",
            "gather_to_all_reduce",
        ] {
            assert!(row[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {row}");
        }
    }

    let adapters = v["adapters"].as_array().expect("adapters");
    assert!(!adapters.is_empty(), "no adapter ran: {text}");
    for a in adapters {
        for key in [
            "name",
            "device_type",
            "driver",
            "driver_info",
            "timing_note",
        ] {
            assert!(a[key].is_string(), "adapter field {key} in {a}");
        }
        assert_eq!(a["backend"], "Vulkan");
        let timing = a["timing"].as_str().unwrap();
        assert!(
            timing == "gpu_timestamps" || timing == "wall_clock",
            "{timing}"
        );
        let ms = a["measurements"].as_array().unwrap();
        let positive = |m: &Value, k: &str| {
            let x = m[k].as_f64().unwrap_or(f64::NAN);
            assert!(x > 0.0 && x.is_finite(), "{k} = {x} in {m}");
        };
        for m in ms {
            for k in [
                "params_per_s",
                "gb_per_s",
                "time_s",
                "wall_s",
                "ratio_to_copy",
            ] {
                positive(m, k);
            }
            positive(&m["copy"], "gb_per_s");
            if timing == "gpu_timestamps" {
                positive(m, "gpu_s");
            }
        }
        let has = |opt: &str, layout: &str, dispatch: &str, params: Option<u64>| {
            ms.iter().any(|m| {
                m["optimizer"] == opt
                    && m["layout"] == layout
                    && m["dispatch"] == dispatch
                    && params.is_none_or(|p| m["params"].as_u64() == Some(p))
            })
        };
        for opt in optimizers() {
            assert!(has(opt, "gpt2_like", "fused", Some(3_748_864)), "{opt} mix");
            // A quick run times Muon (seconds a step on lavapipe) on the
            // mix fused and on the smallest matrix only.
            let muon = opt == "muon";
            assert_eq!(
                has(opt, "gpt2_like", "per_tensor", None),
                !muon,
                "{opt} per tensor"
            );
            for &n in &sizes {
                let want = !muon || n == sizes[0];
                assert_eq!(has(opt, "single", "fused", Some(n)), want, "{opt} {n}");
            }
        }
        // Muon: the hidden matrices with Muon, the rest with AdamW, beside
        // AdamW on the same tensors; its products' GFLOP/s.
        for m in ms
            .iter()
            .filter(|m| m["optimizer"] == "muon" && m["layout"] != "gpt2_xl_like")
        {
            assert_eq!(m["baseline"], "adamw", "{m}");
            positive(m, "ratio_to_baseline");
            positive(m, "gflop_per_s");
            assert_eq!(m["reps"], 1);
        }
        let muon_single = ms
            .iter()
            .find(|m| m["optimizer"] == "muon" && m["layout"] == "single")
            .expect("a Muon matrix row");
        // measure, reduce, 3 products per iteration (5), apply.
        assert_eq!(muon_single["dispatches_per_step"], 18);
        assert!(
            ms.iter()
                .filter(|m| m["optimizer"] != "muon")
                .all(|m| m.get("gflop_per_s").is_none()),
            "GFLOP/s only where there are matrix products"
        );
        assert!(has("adam+clip_global_norm", "gpt2_like", "fused", None));
        // --big, scaled down by --quick: every optimizer on the GPT-2-XL-like
        // mix (2 layers of 64 here), AdamW on the flat "7 B" model (2^18).
        for opt in optimizers() {
            assert!(has(opt, "gpt2_xl_like", "fused", Some(198_400)), "{opt} xl");
        }
        assert!(has("adamw", "flat_7b", "fused", Some(1 << 18)));
        // AdamW's rows of other param / grad and state formats: what they
        // move and hold per param (bench::precision_cases), each beside the
        // all-f32 AdamW. bf16 params + grads + 8-bit states: the issue's
        // targets, at most 6.1 held and 11 moved.
        for (param, state, update, moved, held) in [
            ("f32", "bf16", "nearest", 20.0, 12.0),
            ("f32", "8bit", "nearest", 16.06, 10.03),
            ("bf16", "f32", "nearest", 22.0, 12.0),
            ("bf16", "8bit", "nearest", 10.06, 6.03),
            ("bf16", "8bit", "master", 16.06, 10.03),
            ("bf16", "8bit", "stochastic", 10.06, 6.03),
            ("f16", "8bit", "master", 16.06, 10.03),
        ] {
            let m = ms
                .iter()
                .find(|m| {
                    m["optimizer"] == "adamw+dtypes"
                        && m["param_dtype"] == param
                        && m["state_dtype"] == state
                        && m["param_update"] == update
                })
                .unwrap_or_else(|| panic!("no {param}/{state}/{update} row"));
            assert_eq!(m["master"], update == "master");
            assert_eq!(m["baseline"], "adamw");
            positive(m, "ratio_to_baseline");
            // Tensors under 4096 elements (0.36% of the mix) keep f32 states.
            let b = m["bytes_per_param"].as_f64().unwrap();
            assert!(
                (moved..moved + 0.05).contains(&b),
                "{param}/{state}: moved {b}"
            );
            let h = m["device_bytes_per_param"].as_f64().unwrap();
            assert!((held..held + 0.1).contains(&h), "{param}/{state}: held {h}");
            if (param, state, update) == ("bf16", "8bit", "nearest") {
                assert!(
                    b <= 11.0 && h <= 6.1,
                    "the issue's targets: {b} moved, {h} held"
                );
            }
        }
        // (On the mix; a small single tensor carries the uniform table's
        // 16 KiB over few params.)
        for m in ms
            .iter()
            .filter(|m| m["optimizer"] == "adamw" && m["layout"] == "gpt2_like")
        {
            assert_eq!(m["state_dtype"], "f32");
            let h = m["device_bytes_per_param"].as_f64().unwrap();
            assert!((16.0..16.1).contains(&h), "f32 AdamW holds {h}");
        }
    }

    let chart = std::fs::read_to_string(&svg).expect("the SVG file was written");
    check_chart(&chart, adapters);
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(svg);
}

/// The chart parses as SVG and shows what the JSON holds: one marker per
/// fused single-tensor point, one diamond per GPT-2-like mix, a line in each
/// optimizer's color through its markers, and the title, axes and legend.
fn check_chart(chart: &str, adapters: &[Value]) {
    assert!(chart.starts_with("<?xml"), "{chart}");
    let doc = roxmltree::Document::parse(chart).unwrap_or_else(|e| panic!("{e}:\n{chart}"));
    let svg = doc.root_element();
    assert_eq!(svg.tag_name().name(), "svg");
    assert_eq!(
        svg.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let all = |tag: &'static str| doc.descendants().filter(move |n| n.has_tag_name(tag));
    let texts: Vec<&str> = all("text")
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for want in [
        "fused step throughput",
        "tensor size (f32 elements, log scale)",
        "params/s (log scale)",
        "2^16",
        "2^18",
        "GPT-2-like mix (50 tensors)",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(want)),
            "{want} in {texts:?}"
        );
    }
    for opt in optimizers() {
        assert!(texts.contains(&opt), "legend entry {opt} in {texts:?}");
    }
    let fused = |layout: &str| {
        adapters
            .iter()
            .flat_map(|a| a["measurements"].as_array().unwrap())
            .filter(|m| {
                m["layout"] == layout
                    && m["dispatch"] == "fused"
                    && optimizers().contains(&m["optimizer"].as_str().unwrap())
            })
            .count()
    };
    assert_eq!(all("circle").count(), fused("single"), "a marker per point");
    assert_eq!(
        all("polygon").count(),
        fused("gpt2_like") + 1,
        "a diamond per mix and one in the legend"
    );
    let mut colors: Vec<&str> = all("circle").filter_map(|c| c.attribute("fill")).collect();
    colors.sort_unstable();
    colors.dedup();
    assert_eq!(colors.len(), optimizers().len(), "a color per optimizer");
    for color in colors {
        let lines = all("polyline")
            .filter(|l| l.attribute("stroke") == Some(color))
            .count();
        assert!(lines >= 2, "{color}: its series and its legend entry");
    }
}

#[test]
fn unknown_backend_exits_nonzero_with_the_choices() {
    let o = run(&["--backend", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("invalid value 'nosuch'"), "{e}");
    assert!(e.contains("vulkan, metal, dx12, gl, all"), "{e}");
}

/// The first power of two that does not fit one buffer of the Vulkan
/// adapter, or past the harness's own cap when the adapter holds more.
fn oversize_for_vulkan() -> u64 {
    let instance = wgpu_optim::gpu::instance_for(wgpu::Backends::VULKAN);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    let max_buffer = adapters
        .iter()
        .map(|a| a.limits().max_buffer_size)
        .min()
        .expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)");
    ((max_buffer / 4) + 1).next_power_of_two().min(1 << 31)
}

#[test]
fn oversize_max_size_is_rejected_before_anything_runs() {
    let n = oversize_for_vulkan();
    let arg = format!("2^{}", n.trailing_zeros());
    let o = run(&["--backend", "vulkan", "--no-progress", "--max-size", &arg]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("--max-size"), "{e}");
    assert!(
        e.contains("max_buffer_size") || e.contains("harness allows"),
        "the message names the limit: {e}"
    );

    let o = run(&["--max-size", "2^40"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("2^30"), "{}", stderr(&o));
}

#[test]
fn other_bad_input_gets_a_message_and_nonzero_status() {
    let o = run(&["--min-size", "2^20", "--max-size", "2^18"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--min-size"), "{}", stderr(&o));

    let o = run(&["--max-size", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("lots"), "{}", stderr(&o));

    let o = run(&["--backend", "vulkan", "--adapter", "no-such-adapter-xyz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no adapter name contains"),
        "{}",
        stderr(&o)
    );

    let o = run(&[
        "--backend",
        "vulkan",
        "--json",
        "/nonexistent-dir-wgpu-optim/out.json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot write --json"), "{}", stderr(&o));

    for o in [run(&["--reps", "0"]), run(&["--timing", "sundial"])] {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }
}
