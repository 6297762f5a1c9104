//! Early stopping against the real Keras `EarlyStopping` callback
//! (tests/golden/early_stopping.json, written by
//! tests/golden/gen_early_stopping.py), plus edge cases worked out from the
//! Keras 3 source (keras/src/callbacks/early_stopping.py, `on_epoch_end`,
//! lines 95-127 of Keras 3.15; monitor_callback.py, `_is_improvement`,
//! lines 101-104).

mod common;

use common::json_f64 as f;
use serde_json::Value;
use wgpu_optim::early_stopping::{
    Decision, EarlyStopping, EarlyStoppingConfig, Mode, StopReason, mode_from_monitor,
};
use wgpu_optim::{Error, ErrorKind};

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/early_stopping.json"
    );
    let text = std::fs::read_to_string(path).expect("read early_stopping.json");
    serde_json::from_str(&text).expect("parse early_stopping.json")
}

fn config(c: &Value) -> EarlyStoppingConfig {
    EarlyStoppingConfig {
        monitor: c["monitor"].as_str().unwrap().to_string(),
        mode: match c["mode"].as_str().unwrap() {
            "min" => Mode::Min,
            "max" => Mode::Max,
            m => panic!("{m}"),
        },
        min_delta: f(&c["min_delta"]),
        patience: c["patience"].as_u64().unwrap(),
        baseline: if c["baseline"].is_null() {
            None
        } else {
            Some(f(&c["baseline"]))
        },
        start_from_epoch: c["start_from_epoch"].as_u64().unwrap(),
        restore_best_weights: c["restore_best_weights"].as_bool().unwrap(),
    }
}

#[test]
fn matches_keras() {
    let g = golden();
    assert!(!g["keras_version"].as_str().unwrap().is_empty());
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let cfg = config(&case["config"]);
        let restore = cfg.restore_best_weights;
        let mut es = EarlyStopping::new(cfg).unwrap();
        let values: Vec<f64> = case["values"].as_array().unwrap().iter().map(f).collect();
        let epochs = case["epochs"].as_array().unwrap();
        for (k, want) in epochs.iter().enumerate() {
            let epoch = want["epoch"].as_u64().unwrap();
            let d = es.update(epoch, values[k]);
            let ctx = format!("{name} epoch {epoch}: {d:?} vs keras {want}");
            assert_eq!(d.improved, want["improved"].as_bool().unwrap(), "{ctx}");
            assert_eq!(d.snapshot, want["snapshot"].as_bool().unwrap(), "{ctx}");
            assert_eq!(d.stop, want["stop"].as_bool().unwrap(), "{ctx}");
            assert_eq!(d.restore_best, d.stop && restore, "{ctx}");
            assert_eq!(es.wait(), want["wait"].as_u64().unwrap(), "{ctx}");
            // Values are compared exactly: `best` is a copy of an input.
            match &want["best"] {
                Value::Null => assert_eq!(es.best_value(), None, "{ctx}"),
                b => assert_eq!(es.best_value(), Some(f(b)), "{ctx}"),
            }
            // Keras starts best_epoch at 0; here it is None until set.
            assert_eq!(
                es.best_epoch().unwrap_or(0),
                want["best_epoch"].as_u64().unwrap(),
                "{ctx}"
            );
            assert_eq!(es.should_stop(), d.stop, "{ctx}");
        }
        // Keras' stopped_epoch is 0 when training did not stop (a stop never
        // happens at epoch 0).
        assert_eq!(
            es.stopped_epoch().unwrap_or(0),
            case["stopped_epoch"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            es.reason().is_some(),
            es.stopped_epoch().is_some(),
            "{name}"
        );
        match case["restored_epoch"].as_u64() {
            Some(e) => {
                assert!(es.on_train_end(), "{name}: keras restored");
                assert_eq!(es.best_epoch(), Some(e), "{name}: restored snapshot");
            }
            None => assert!(!es.on_train_end(), "{name}: keras did not restore"),
        }
    }
}

fn run(cfg: EarlyStoppingConfig, values: &[f64]) -> (EarlyStopping, Vec<Decision>) {
    let mut es = EarlyStopping::new(cfg).unwrap();
    let mut out = Vec::new();
    for (e, &v) in values.iter().enumerate() {
        let d = es.update(e as u64, v);
        out.push(d);
        if d.stop {
            break;
        }
    }
    (es, out)
}

#[test]
fn nan_first_value_is_not_an_improvement() {
    // Deliberate difference from Keras: there `_is_improvement(nan, None)` is
    // True (monitor_callback.py line 102-103), so a first NaN becomes `best`
    // and nothing can improve on it afterwards. Here a NaN never improves.
    let cfg = EarlyStoppingConfig {
        patience: 2,
        restore_best_weights: true,
        ..EarlyStoppingConfig::default()
    };
    let (es, ds) = run(cfg, &[f64::NAN, 1.0, 0.5, 0.75, 0.75]);
    // The first monitored epoch is snapshotted even though it did not
    // improve (early_stopping.py lines 104-108).
    assert_eq!(
        ds[0],
        Decision {
            improved: false,
            snapshot: true,
            stop: false,
            restore_best: false
        }
    );
    assert!(ds[1].improved && ds[2].improved);
    assert!(ds[4].stop && ds[4].restore_best);
    assert_eq!(es.best_value(), Some(0.5));
    assert_eq!(es.best_epoch(), Some(2));
}

#[test]
fn nan_only_stops_after_patience() {
    let (es, ds) = run(
        EarlyStoppingConfig {
            patience: 2,
            ..EarlyStoppingConfig::default()
        },
        &[f64::NAN; 5],
    );
    // wait is 1 after epoch 0 and 2 (= patience) after epoch 1: stop.
    assert_eq!(ds.len(), 2);
    assert!(ds[1].stop);
    assert_eq!(es.best_value(), None);
    assert_eq!(
        es.reason().unwrap(),
        StopReason::PatienceExhausted {
            epoch: 1,
            patience: 2,
            best_epoch: None,
            best_value: None
        }
    );
}

#[test]
fn patience_zero_never_stops_at_epoch_zero() {
    // `if self.wait >= self.patience and epoch > 0` (line 124).
    let mut es = EarlyStopping::new(EarlyStoppingConfig::default()).unwrap();
    assert!(!es.update(0, f64::NAN).stop);
    assert!(es.update(1, f64::NAN).stop);
}

#[test]
fn baseline_reason_and_display() {
    let cfg = EarlyStoppingConfig {
        patience: 2,
        baseline: Some(0.5),
        ..EarlyStoppingConfig::default()
    };
    // Epoch 0 becomes the best but does not beat the baseline, so `wait`
    // (1) is not reset; epoch 1 makes it 2 = patience: stop.
    let (es, ds) = run(cfg.clone(), &[1.0, 1.5, 1.5]);
    assert_eq!(ds.len(), 2);
    assert!(ds[1].stop);
    let r = es.reason().unwrap();
    assert_eq!(
        r,
        StopReason::BaselineNotBeaten {
            epoch: 1,
            patience: 2,
            baseline: 0.5,
            best_value: Some(1.0)
        }
    );
    let msg = r.to_string();
    assert!(
        msg.contains("baseline 0.5") && msg.contains("epoch 1"),
        "{msg}"
    );

    let (es, _) = run(cfg, &[0.25, 0.375, 0.375]);
    let r = es.reason().unwrap();
    assert!(matches!(r, StopReason::PatienceExhausted { .. }));
    let msg = r.to_string();
    assert!(msg.contains("no improvement for 2") && msg.contains("best value 0.25 at epoch 0"));
}

#[test]
fn start_from_epoch_ignores_early_epochs() {
    let mut es = EarlyStopping::new(EarlyStoppingConfig {
        start_from_epoch: 2,
        restore_best_weights: true,
        ..EarlyStoppingConfig::default()
    })
    .unwrap();
    assert_eq!(es.update(0, 0.1), Decision::default());
    assert_eq!(es.update(1, 0.2), Decision::default());
    assert_eq!(es.wait(), 0);
    assert!(!es.on_train_end(), "nothing monitored, nothing to restore");
    let d = es.update(2, 5.0);
    assert!(d.improved && d.snapshot);
    assert_eq!(es.best_epoch(), Some(2));
}

#[test]
fn reset_and_serde_round_trip() {
    let cfg = EarlyStoppingConfig {
        patience: 3,
        baseline: Some(0.5),
        restore_best_weights: true,
        ..EarlyStoppingConfig::default()
    };
    let mut es = EarlyStopping::new(cfg).unwrap();
    es.update(0, f64::INFINITY);
    es.update(1, 0.75);
    let json = serde_json::to_string(&es).unwrap();
    let mut back: EarlyStopping = serde_json::from_str(&json).unwrap();
    assert_eq!(back, es);
    assert_eq!(back.update(2, 0.25), es.update(2, 0.25));
    assert_eq!(back, es);
    back.reset();
    assert_eq!(back.wait(), 0);
    assert_eq!(back.best_value(), None);
    assert_eq!(back.best_epoch(), None);
    assert_eq!(back.config(), es.config());

    let bad = json.replace("\"min_delta\":0.0", "\"min_delta\":\"nan\"");
    assert_ne!(bad, json);
    assert!(serde_json::from_str::<EarlyStopping>(&bad).is_err());
}

fn field(r: Result<EarlyStopping, Error>) -> String {
    match r {
        Err(Error::InvalidConfig { field, .. }) => field,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn invalid_config_names_the_field() {
    let d = EarlyStoppingConfig::default;
    let mk = |c| field(EarlyStopping::new(c));
    assert_eq!(
        mk(EarlyStoppingConfig {
            min_delta: f64::NAN,
            ..d()
        }),
        "min_delta"
    );
    assert_eq!(
        mk(EarlyStoppingConfig {
            min_delta: f64::INFINITY,
            ..d()
        }),
        "min_delta"
    );
    assert_eq!(
        mk(EarlyStoppingConfig {
            baseline: Some(f64::NAN),
            ..d()
        }),
        "baseline"
    );
    assert_eq!(
        mk(EarlyStoppingConfig {
            baseline: Some(f64::NEG_INFINITY),
            ..d()
        }),
        "baseline"
    );
    // Negative min_delta is allowed: Keras uses its absolute value.
    assert!(
        EarlyStopping::new(EarlyStoppingConfig {
            min_delta: -0.1,
            ..d()
        })
        .is_ok()
    );
}

#[test]
fn auto_mode_from_monitor_name() {
    assert_eq!(mode_from_monitor("loss").unwrap(), Mode::Min);
    assert_eq!(mode_from_monitor("val_loss").unwrap(), Mode::Min);
    assert_eq!(mode_from_monitor("val_accuracy").unwrap(), Mode::Max);
    assert_eq!(mode_from_monitor("acc").unwrap(), Mode::Max);
    let e = mode_from_monitor("val_f1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("val_f1"));
}
