//! The limits of schedule values (issue 15): a linear one-cycle holds its
//! final lr past `total_steps` instead of PyTorch's negative extrapolation,
//! divisors whose rates cannot be computed are refused by name, lr-like
//! arguments must be finite in `f32` (the device's precision), and the
//! config structs' defaults are PyTorch's.

use wgpu_optim::Error;
use wgpu_optim::schedule::{Anneal, CyclicConfig, CyclicMode, OneCycleConfig, Schedule};

fn field_of(r: Result<Schedule, Error>) -> String {
    match r {
        Err(Error::InvalidConfig { field, .. }) => field,
        Err(e) => panic!("expected InvalidConfig, got {e}"),
        Ok(s) => panic!("expected an error, got {s:?}"),
    }
}

#[test]
fn one_cycle_linear_holds_the_final_lr_past_total_steps() {
    // PyTorch extrapolates a linear last phase at step total_steps, below
    // the final lr (here to a negative lr and a momentum above max).
    for three_phase in [false, true] {
        let s = Schedule::one_cycle(OneCycleConfig {
            anneal: Anneal::Linear,
            three_phase,
            div_factor: 10.0,
            final_div_factor: 100.0,
            ..OneCycleConfig::new(0.5, 40)
        })
        .unwrap();
        let final_lr = 0.5 / 10.0 / 100.0;
        for k in 0..=60 {
            assert!(
                s.lr(k) >= final_lr * (1.0 - 1e-12),
                "{three_phase} {k}: {}",
                s.lr(k)
            );
            let m = s.momentum(k).unwrap();
            assert!(
                (0.85..=0.95).contains(&m),
                "{three_phase} {k}: momentum {m}"
            );
        }
        for k in [40, 41, 1000, u64::MAX] {
            assert_eq!(s.lr(k), final_lr, "{three_phase} {k}");
            assert_eq!(s.momentum(k), Some(0.95), "{three_phase} {k}");
            assert!(s.try_lr(k).is_ok());
        }
    }
}

#[test]
fn one_cycle_refuses_divisors_whose_rates_cannot_be_computed() {
    let oc = |div_factor, final_div_factor, max_lr| {
        field_of(Schedule::one_cycle(OneCycleConfig {
            div_factor,
            final_div_factor,
            ..OneCycleConfig::new(max_lr, 20)
        }))
    };
    assert_eq!(oc(1e-320, 1e4, 0.1), "div_factor");
    assert_eq!(oc(1e-10, 1e4, 1e30), "div_factor", "1e40 overflows f32");
    assert_eq!(oc(25.0, 1e-320, 0.1), "final_div_factor");
    assert_eq!(oc(1.0, 1e-9, 1e30), "final_div_factor");
    assert_eq!(oc(f64::INFINITY, 1e4, 0.1), "div_factor");
    // Required fields left at Default are refused by name.
    assert_eq!(
        field_of(Schedule::one_cycle(OneCycleConfig::default())),
        "max_lr"
    );
    let no_steps = OneCycleConfig {
        max_lr: 0.1,
        ..Default::default()
    };
    assert_eq!(field_of(Schedule::one_cycle(no_steps)), "total_steps");
    assert_eq!(
        field_of(Schedule::cyclic(CyclicConfig::default())),
        "base_lr"
    );
    // The defaults are PyTorch's.
    let d = OneCycleConfig::new(0.1, 20);
    assert_eq!(
        (d.pct_start, d.anneal, d.three_phase),
        (0.3, Anneal::Cos, false)
    );
    assert_eq!((d.div_factor, d.final_div_factor), (25.0, 1e4));
    assert_eq!(d.cycle_momentum, Some((0.85, 0.95)));
    let c = CyclicConfig::new(0.001, 0.01);
    assert_eq!((c.step_size_up, c.step_size_down), (2000, None));
    assert_eq!(
        (c.mode, c.cycle_momentum),
        (CyclicMode::Triangular, Some((0.8, 0.9)))
    );
}

#[test]
fn lr_like_arguments_must_be_finite_in_f32() {
    assert_eq!(field_of(Schedule::constant(1e39)), "lr");
    assert_eq!(field_of(Schedule::step(f64::MAX, 3, 0.5)), "lr");
    assert_eq!(
        field_of(Schedule::cyclic(CyclicConfig::new(0.1, 1e39))),
        "max_lr"
    );
    assert!(Schedule::constant(f32::MAX as f64).is_ok());
}
