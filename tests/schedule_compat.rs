//! Compatibility with the serde layout of the single-enum `src/schedule.rs`
//! (before the `src/schedule/` folder): `tests/golden/schedules_v1.json`,
//! written by that code, still loads, gives the same values bit for bit,
//! and the current code writes the same JSON.

mod common;

use common::schedule_args::cyclic;
use serde_json::Value;
use wgpu_optim::Error;
use wgpu_optim::schedule::{
    Anneal, CyclicMode, OneCycleConfig, PlateauConfig, ReduceLrOnPlateau, Schedule,
};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn fvec(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// One schedule of every serializable variant (and several forms of the
/// variants with options), by name: what `tests/golden/schedules_v1.json`
/// holds in the serde layout of the single-enum `src/schedule.rs`, built
/// here with the current constructors.
fn v1_cases() -> Vec<(&'static str, Schedule)> {
    let c = |r: Result<Schedule, Error>| r.unwrap();
    vec![
        ("constant", c(Schedule::constant(0.05))),
        ("constant_lr", c(Schedule::constant_lr(0.1, 0.5, 4))),
        ("linear", c(Schedule::linear(0.1, 0.25, 1.0, 8))),
        ("step", c(Schedule::step(0.1, 3, 0.5))),
        (
            "multi_step",
            c(Schedule::multi_step(0.1, vec![2, 5, 9], 0.1)),
        ),
        ("exponential", c(Schedule::exponential(0.1, 0.9))),
        ("polynomial", c(Schedule::polynomial(0.1, 10, 2.0))),
        (
            "cosine_annealing",
            c(Schedule::cosine_annealing(0.1, 10, 0.001)),
        ),
        (
            "cosine_warm_restarts",
            c(Schedule::cosine_warm_restarts(0.1, 4, 2, 0.001)),
        ),
        (
            "cyclic_triangular_momentum",
            c(cyclic(
                0.001,
                0.01,
                5,
                None,
                CyclicMode::Triangular,
                Some((0.8, 0.9)),
            )),
        ),
        (
            "cyclic_triangular2",
            c(cyclic(
                0.001,
                0.1,
                4,
                Some(6),
                CyclicMode::Triangular2,
                None,
            )),
        ),
        (
            "cyclic_exp_range",
            c(cyclic(
                0.01,
                0.1,
                3,
                Some(5),
                CyclicMode::ExpRange { gamma: 0.97 },
                Some((0.85, 0.95)),
            )),
        ),
        (
            "one_cycle_cos",
            c(Schedule::one_cycle(OneCycleConfig {
                max_lr: 0.1,
                total_steps: 50,
                pct_start: 0.3,
                anneal: Anneal::Cos,
                div_factor: 25.0,
                final_div_factor: 1e4,
                three_phase: false,
                cycle_momentum: Some((0.85, 0.95)),
            })),
        ),
        (
            "one_cycle_linear_3phase",
            c(Schedule::one_cycle(OneCycleConfig {
                pct_start: 0.25,
                anneal: Anneal::Linear,
                div_factor: 10.0,
                final_div_factor: 100.0,
                three_phase: true,
                cycle_momentum: None,
                ..OneCycleConfig::new(0.5, 40)
            })),
        ),
        (
            "sequential",
            c(Schedule::sequential(
                vec![
                    c(Schedule::linear(0.1, 0.5, 1.0, 5)),
                    c(Schedule::cosine_annealing(0.1, 20, 0.0)),
                ],
                vec![5],
            )),
        ),
        (
            "chained",
            c(Schedule::chained(vec![
                c(Schedule::step(0.1, 3, 0.5)),
                c(Schedule::exponential(0.1, 0.95)),
            ])),
        ),
        (
            "warmup_cosine",
            c(Schedule::warmup_cosine(0.1, 5, 30, 0.001)),
        ),
        ("warmup_constant", c(Schedule::warmup_constant(0.1, 5))),
    ]
}

/// The old layout's file (see tests/golden/README.md).
fn golden_v1() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/schedules_v1.json"
    );
    let text = std::fs::read_to_string(path).expect("read schedules_v1.json");
    serde_json::from_str(&text).expect("parse schedules_v1.json")
}

fn bits_of(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(u).collect()
}

#[test]
fn schedules_serialized_by_the_old_layout_still_load() {
    use wgpu_optim::checkpoint::TrainingState;
    use wgpu_optim::schedule::LrScheduler;

    let g = golden_v1();
    let fresh = v1_cases();
    let entries = g["schedules"].as_array().unwrap();
    assert_eq!(entries.len(), fresh.len(), "one entry per case");
    let steps: Vec<u64> = g["steps"].as_array().unwrap().iter().map(u).collect();
    for (entry, (name, made)) in entries.iter().zip(&fresh) {
        assert_eq!(entry["name"], *name);
        let loaded: Schedule = serde_json::from_value(entry["schedule"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.kind(), made.kind(), "{name}");
        let old_bits = bits_of(&entry["lr_bits"]);
        for (i, &k) in steps.iter().enumerate() {
            let (got, want) = (loaded.lr(k), made.lr(k));
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{name} at {k}: {got:e} vs {want:e}"
            );
            assert_eq!(
                loaded.momentum(k).map(f64::to_bits),
                made.momentum(k).map(f64::to_bits),
                "{name} momentum at {k}"
            );
            let old = f64::from_bits(old_bits[i]);
            if *name == "one_cycle_linear_3phase" && k >= 40 {
                // The one value changed on purpose (issue 15): the old code
                // held PyTorch's negative extrapolation at total_steps.
                assert!(
                    old < 0.0 && got == 0.5 / 10.0 / 100.0,
                    "{name} at {k}: {got:e}"
                );
            } else {
                assert_eq!(
                    got.to_bits(),
                    old_bits[i],
                    "{name} at {k}: the old code gave {old:e}"
                );
            }
        }
        match entry["momentum_bits"].as_array() {
            Some(m) => {
                let got: Vec<u64> = steps
                    .iter()
                    .map(|&k| loaded.momentum(k).unwrap().to_bits())
                    .collect();
                assert_eq!(got, m.iter().map(u).collect::<Vec<_>>(), "{name} momentum");
            }
            None => assert_eq!(loaded.momentum(3), None, "{name}"),
        }
        for k in [u64::MAX - 1, u64::MAX] {
            assert_eq!(
                loaded.lr(k).to_bits(),
                made.lr(k).to_bits(),
                "{name} at {k}"
            );
        }
    }

    // ReduceLrOnPlateau: the loaded state is the one a replay produces.
    let p = &g["plateau"];
    let stepped: ReduceLrOnPlateau = serde_json::from_value(p["stepped"].clone()).unwrap();
    let mut replay = ReduceLrOnPlateau::new(stepped.config().clone()).unwrap();
    let mut lrs = [0.1, 0.05];
    for m in [1.0, 0.5, 0.5, 0.5, 0.75] {
        replay.step(m, &mut lrs).unwrap();
    }
    assert_eq!(replay, stepped);
    assert_eq!(lrs.to_vec(), fvec(&p["lrs_after"]));
    let fresh_plateau: ReduceLrOnPlateau = serde_json::from_value(p["fresh"].clone()).unwrap();
    assert_eq!(
        fresh_plateau,
        ReduceLrOnPlateau::new(PlateauConfig::default()).unwrap()
    );
    assert_eq!(fresh_plateau.best(), f64::INFINITY);

    // LrScheduler: the same lr per group, bit for bit.
    let l = &g["lr_scheduler"];
    for (key, bits_key, step) in [
        ("shared", "shared_lr_bits", 4),
        ("per_group", "per_group_lr_bits", 7),
    ] {
        let s: LrScheduler = serde_json::from_value(l[key].clone()).unwrap();
        assert_eq!(s.step_count(), step, "{key}");
        assert_eq!(s.num_groups(), 2, "{key}");
        let got: Vec<u64> = (0..2).map(|g| s.lr(g).unwrap().to_bits()).collect();
        assert_eq!(got, bits_of(&l[bits_key]), "{key}");
    }
    let shared: LrScheduler = serde_json::from_value(l["shared"].clone()).unwrap();
    let peak = Schedule::warmup_cosine(0.1, 3, 20, 1e-5).unwrap();
    assert_eq!(shared.lr(0).unwrap().to_bits(), peak.lr(4).to_bits());
    assert_eq!(
        shared.lr(1).unwrap().to_bits(),
        (peak.lr(4) * 0.5).to_bits()
    );

    // The whole TrainingState of a checkpoint.
    let t: TrainingState = serde_json::from_value(g["training_state"].clone()).unwrap();
    assert_eq!(t.epoch, 2);
    assert_eq!(t.scheduler, Some(shared));
    assert_eq!(t.plateau, Some(stepped));
    assert_eq!(
        t.early_stopping.as_ref().map(|e| e.best_value()),
        Some(Some(1.0))
    );
    assert_eq!(t.extra["note"], serde_json::json!({"k": [1, 2]}));
}

#[test]
fn the_serde_layout_is_unchanged_from_v1() {
    use wgpu_optim::checkpoint::TrainingState;

    let g = golden_v1();
    for (entry, (name, made)) in g["schedules"].as_array().unwrap().iter().zip(v1_cases()) {
        assert_eq!(
            serde_json::to_value(&made).unwrap(),
            entry["schedule"],
            "{name}"
        );
    }
    let t: TrainingState = serde_json::from_value(g["training_state"].clone()).unwrap();
    assert_eq!(serde_json::to_value(&t).unwrap(), g["training_state"]);
}

#[test]
fn deserializing_a_family_validates_it() {
    let g = golden_v1();
    let cyc = g["schedules"][9]["schedule"].clone();
    assert_eq!(cyc["cyclic"]["max_lr"], 0.01);
    let mut bad = cyc.clone();
    bad["cyclic"]["max_lr"] = serde_json::json!(0.0001);
    let e = serde_json::from_value::<Schedule>(bad).unwrap_err();
    assert!(e.to_string().contains("max_lr"), "{e}");
    // A nested member too.
    let seq = r#"{"sequential":{"schedules":[{"constant":{"lr":0.1}},
        {"one_cycle":{"max_lr":0.1,"total_steps":10,"pct_start":0.3,"anneal":"cos",
        "div_factor":1e-320,"final_div_factor":1e4,"three_phase":false,
        "cycle_momentum":null}}],"milestones":[3]}}"#;
    let e = serde_json::from_str::<Schedule>(seq).unwrap_err();
    assert!(e.to_string().contains("div_factor"), "{e}");
    // An LrScheduler whose schedules do not fit its groups.
    let sched = r#"{"schedules":[{"constant":{"lr":0.1}},{"constant":{"lr":0.1}}],
        "ratios":[1.0,1.0,1.0],"step":0}"#;
    let e = serde_json::from_str::<wgpu_optim::schedule::LrScheduler>(sched).unwrap_err();
    assert!(
        e.to_string().contains("2 schedule(s) for 3 group(s)"),
        "{e}"
    );
}
