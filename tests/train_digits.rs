//! The digits example's kernels and training loop: the WGSL backward pass
//! against an f64 host computation, a reduced training budget reaching a
//! stated accuracy, and bitwise repeatability for a fixed seed.

mod common;

#[path = "../examples/train_digits/model.rs"]
mod model;

use common::gpu;
use model::*;
use wgpu_optim::optim::StateDtype;
use wgpu_optim::{ParamDtype, ParamSet, ParamSetOptions, ParamUpdate};

fn one() -> wgpu_optim::pool::DevicePool {
    wgpu_optim::pool::DevicePool::from_gpus(vec![gpu().clone()]).unwrap()
}

fn data() -> Data {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/digits.csv.gz");
    load_digits(&path).unwrap()
}

/// f64 forward + backward of the MLP for the samples `ids`, mean loss.
fn host_grads(p: &[Vec<f32>], data: &Data, ids: &[u32]) -> (f64, Vec<Vec<f64>>) {
    let w1 = &p[0];
    let b1 = &p[1];
    let w2 = &p[2];
    let b2 = &p[3];
    let mut g = vec![
        vec![0.0; N_HID * N_IN],
        vec![0.0; N_HID],
        vec![0.0; N_OUT * N_HID],
        vec![0.0; N_OUT],
    ];
    let mut loss = 0.0;
    let n = ids.len() as f64;
    for &s in ids {
        let x = &data.x[s as usize * N_IN..(s as usize + 1) * N_IN];
        let h: Vec<f64> = (0..N_HID)
            .map(|j| {
                (b1[j] as f64
                    + (0..N_IN)
                        .map(|i| x[i] as f64 * w1[j * N_IN + i] as f64)
                        .sum::<f64>())
                .max(0.0)
            })
            .collect();
        let z: Vec<f64> = (0..N_OUT)
            .map(|k| {
                b2[k] as f64
                    + (0..N_HID)
                        .map(|j| h[j] * w2[k * N_HID + j] as f64)
                        .sum::<f64>()
            })
            .collect();
        let mx = z.iter().cloned().fold(f64::MIN, f64::max);
        let se: f64 = z.iter().map(|v| (v - mx).exp()).sum();
        let y = data.y[s as usize] as usize;
        loss += (se.ln() - (z[y] - mx)) / n;
        let dz: Vec<f64> = (0..N_OUT)
            .map(|k| ((z[k] - mx).exp() / se - (k == y) as u8 as f64) / n)
            .collect();
        for k in 0..N_OUT {
            g[3][k] += dz[k];
            for j in 0..N_HID {
                g[2][k * N_HID + j] += dz[k] * h[j];
            }
        }
        for j in 0..N_HID {
            if h[j] <= 0.0 {
                continue;
            }
            let dh: f64 = (0..N_OUT).map(|k| dz[k] * w2[k * N_HID + j] as f64).sum();
            g[1][j] += dh;
            for i in 0..N_IN {
                g[0][j * N_IN + i] += dh * x[i] as f64;
            }
        }
    }
    (loss, g)
}

#[test]
fn wgsl_backward_matches_an_f64_host_computation() {
    let gpu = gpu();
    let data = data();
    let split = split(data.len(), 3);
    let mut params = ParamSet::new(gpu, &layout()).unwrap();
    let p = init_params(3);
    params.write_all(gpu, &p).unwrap();
    let mlp = Mlp::new(gpu, &params, &data, &split, 32).unwrap();
    mlp.run(gpu, 0, 32, 32, true);
    let (loss, _) = mlp.metrics(gpu, 0, 32).unwrap();
    let (want_loss, want) = host_grads(&p, &data, &split.train[..32]);
    // f32 sums of at most 128 products per value: relative error ~1e-6 of the
    // magnitudes involved; 1e-4 of the tensor's largest gradient is ample.
    assert!(
        (loss - want_loss).abs() < 1e-4 * want_loss,
        "loss {loss} vs {want_loss}"
    );
    for (name, w) in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        .iter()
        .zip(&want)
    {
        let got = params.read_grad(gpu, name).unwrap();
        let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{name}: non-trivial gradient");
        for (a, b) in got.iter().zip(w) {
            assert!((*a as f64 - b).abs() <= 1e-4 * scale, "{name}: {a} vs {b}");
        }
    }
}

/// The example's kernels with bf16 params and grads read the params
/// through `param(e)` and write each gradient pair rounded to bf16: the
/// gradients are the host's (from the bf16 params read back) within one
/// bf16 rounding, 2^-8 of each value, plus the f32 sums' error (1e-4 of
/// the tensor's largest gradient, as in the f32 test).
#[test]
fn wgsl_backward_in_bf16_matches_the_host() {
    let gpu = gpu();
    let data = data();
    let split = split(data.len(), 3);
    let options = ParamSetOptions {
        param_dtype: ParamDtype::Bf16,
        grad_dtype: ParamDtype::Bf16,
        chunk_elems: None,
    };
    let mut params = ParamSet::with_options(gpu, &layout(), options).unwrap();
    params.write_all(gpu, &init_params(3)).unwrap();
    let p = params.read_all(gpu).unwrap();
    let mlp = Mlp::new(gpu, &params, &data, &split, 32).unwrap();
    mlp.run(gpu, 0, 32, 32, true);
    let (_, want) = host_grads(&p, &data, &split.train[..32]);
    for (name, w) in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        .iter()
        .zip(&want)
    {
        let got = params.read_grad(gpu, name).unwrap();
        let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (a, b) in got.iter().zip(w) {
            let bound = b.abs() * 2f64.powi(-8) + 1e-4 * scale;
            assert!((*a as f64 - b).abs() <= bound, "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn a_short_training_run_reaches_ninety_percent() {
    let data = data();
    // 8 epochs, no early stop: the default recipe is past 90% held-out
    // accuracy by then (it reaches ~96% in full runs).
    let cfg = TrainConfig {
        epochs: 8,
        patience: 100,
        ..Default::default()
    };
    let mut epochs = 0;
    let s = train(&one(), &data, &cfg, |_| epochs += 1).unwrap();
    assert_eq!(epochs, 8);
    assert!(s.test_acc >= 0.90, "held-out accuracy {}", s.test_acc);
    assert!(s.history.last().unwrap().train_loss < s.history[0].train_loss);
}

#[test]
fn the_same_seed_gives_the_same_weights() {
    let data = data();
    let cfg = TrainConfig {
        epochs: 2,
        seed: 7,
        ..Default::default()
    };
    let a = train(&one(), &data, &cfg, |_| {}).unwrap();
    let b = train(&one(), &data, &cfg, |_| {}).unwrap();
    let bits = |s: &Summary| {
        s.final_params
            .concat()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<u32>>()
    };
    assert_eq!(bits(&a), bits(&b));
    let c = train(&one(), &data, &TrainConfig { seed: 8, ..cfg }, |_| {}).unwrap();
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn a_missing_data_file_is_a_clear_error() {
    let e = load_digits(std::path::Path::new("/nonexistent/digits.csv.gz"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("cannot open"), "{e}");
    let e = spec_for("lbfgs", None, 1.0).err().unwrap();
    assert!(e.to_string().contains("unknown optimizer"), "{e}");
}

fn bits(s: &Summary) -> Vec<u32> {
    s.final_params
        .concat()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn two_devices_train_like_one() {
    let data = data();
    let cfg = TrainConfig {
        epochs: 3,
        patience: 100,
        ..Default::default()
    };
    let a = train(&one(), &data, &cfg, |_| {}).unwrap();
    let pool = open_devices(2).unwrap();
    let b = train(
        &pool,
        &data,
        &TrainConfig {
            devices: 2,
            ..cfg.clone()
        },
        |_| {},
    )
    .unwrap();
    // The batch gradient is the same sum taken in another f32 order (two
    // shards, then the all-reduce): differences of ~1e-7 relative per step,
    // which Adam's normalization keeps small over ~140 steps; 1e-3 absolute
    // on weights of magnitude ~0.1-1 bounds that drift.
    let diff = a
        .final_params
        .concat()
        .iter()
        .zip(b.final_params.concat())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "max param difference {diff}");
    assert!(
        (a.test_acc - b.test_acc).abs() <= 0.02,
        "{} vs {}",
        a.test_acc,
        b.test_acc
    );
    // Same seed, same devices: bitwise the same.
    let c = train(&pool, &data, &TrainConfig { devices: 2, ..cfg }, |_| {}).unwrap();
    assert_eq!(bits(&b), bits(&c));
}

#[test]
fn resuming_from_the_epoch_checkpoint_equals_an_uninterrupted_run() {
    resume_equals_uninterrupted("adamw");
}

/// Schedule-Free saves its checkpoints in eval mode (the averaged weights);
/// the resumed run goes back to train mode and continues bitwise, on one
/// device and data-parallel on two.
#[test]
fn schedule_free_resumes_from_its_eval_mode_checkpoint_bitwise() {
    resume_equals_uninterrupted("schedule_free_adamw");
}

/// Muon on the weight matrices with the biases in an AdamW param group
/// (`--optimizer muon`, `ParamGroup::algorithm`): the checkpoint holds each
/// tensor's own states and a resumed run continues bitwise, on one device
/// and data-parallel on two.
#[test]
fn muon_with_adamw_biases_resumes_from_the_epoch_checkpoint_bitwise() {
    resume_equals_uninterrupted("muon");
}

/// Adafactor (`--optimizer adafactor`): its factored row and column
/// variances go into the checkpoint in torch's shapes and a resumed run
/// continues bitwise, on one device and data-parallel on two.
#[test]
fn adafactor_resumes_from_the_epoch_checkpoint_bitwise() {
    resume_equals_uninterrupted("adafactor");
}

/// With 8-bit optimizer states (`--state-dtype 8bit`: fc1.weight's AdamW
/// states in 8 bits, the small tensors' in f32) the checkpoint holds them as
/// U8 + absmax and a resumed run continues bitwise, on one device and two.
#[test]
fn eight_bit_states_resume_from_the_epoch_checkpoint_bitwise() {
    resume_equals_uninterrupted_with("adamw", StateDtype::Blockwise8);
}

/// bf16 params and grads with 8-bit states and f32 master weights
/// (`--param-dtype bf16 --state-dtype 8bit --master-weights`), and f16
/// params and grads (a static loss scale) with stochastic rounding: the
/// checkpoint holds the params in their dtype and the masters in f32, and a
/// resumed run continues bitwise, on one device and two.
#[test]
fn sixteen_bit_params_resume_from_the_epoch_checkpoint_bitwise() {
    resume_equals_uninterrupted_as("adamw", StateDtype::Blockwise8, |c| TrainConfig {
        param_dtype: ParamDtype::Bf16,
        param_update: ParamUpdate::MasterWeights,
        ..c
    });
    resume_equals_uninterrupted_as("adamw", StateDtype::F32, |c| TrainConfig {
        param_dtype: ParamDtype::F16,
        param_update: ParamUpdate::StochasticRounding,
        ..c
    });
}

/// `--shard-optimizer-state` (ZeRO-1: each device keeps the states of its
/// shard of the tensors and writes its own checkpoint) trains bitwise as
/// the unsharded run on two devices, and resumes from the shard
/// checkpoints bitwise, on one device and two.
#[test]
fn sharded_optimizer_state_trains_and_resumes_like_unsharded() {
    let data = data();
    let pool = open_devices(2).unwrap();
    let cfg = TrainConfig {
        epochs: 3,
        patience: 100,
        devices: 2,
        state_dtype: StateDtype::Blockwise8,
        ..Default::default()
    };
    let plain = train(&pool, &data, &cfg, |_| {}).unwrap();
    let sharded = train(
        &pool,
        &data,
        &TrainConfig {
            shard_state: true,
            ..cfg
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(bits(&plain), bits(&sharded));
    resume_equals_uninterrupted_as("adamw", StateDtype::Blockwise8, |c| TrainConfig {
        shard_state: true,
        ..c
    });
}

fn resume_equals_uninterrupted(optimizer: &str) {
    resume_equals_uninterrupted_with(optimizer, StateDtype::F32)
}

fn resume_equals_uninterrupted_with(optimizer: &str, state_dtype: StateDtype) {
    resume_equals_uninterrupted_as(optimizer, state_dtype, |c| c)
}

fn resume_equals_uninterrupted_as(
    optimizer: &str,
    state_dtype: StateDtype,
    tweak: impl Fn(TrainConfig) -> TrainConfig,
) {
    let data = data();
    for devices in [1, 2] {
        let pool = if devices == 1 {
            one()
        } else {
            open_devices(2).unwrap()
        };
        let cfg = tweak(TrainConfig {
            epochs: 4,
            patience: 100,
            devices,
            optimizer: optimizer.into(),
            state_dtype,
            ..Default::default()
        });
        let dir = std::env::temp_dir().join(format!(
            "wgpu-optim-digits-{}-{optimizer}-{}-{}-{}-{devices}",
            std::process::id(),
            state_dtype.as_str(),
            cfg.param_dtype.as_str(),
            cfg.shard_state
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = dir.join("digits.safetensors");
        let whole = train(&pool, &data, &cfg, |_| {}).unwrap();
        // The same run "interrupted" after 2 epochs: keep the checkpoint that
        // the run wrote after epoch 2 (it is saved after each epoch's callback).
        let kept = dir.join("after-2.safetensors");
        let cfg_ck = TrainConfig {
            checkpoint: Some(ck.clone()),
            ..cfg.clone()
        };
        train(&pool, &data, &cfg_ck, |e| {
            if e.epoch == 2 {
                std::fs::copy(&ck, &kept).unwrap();
                std::fs::copy(best_path(&ck), best_path(&kept)).unwrap();
                // A sharded run's other replicas' files.
                for i in 1..devices {
                    if cfg_ck.shard_state {
                        std::fs::copy(shard_path(&ck, i), shard_path(&kept, i)).unwrap();
                    }
                }
            }
        })
        .unwrap();
        let resumed = train(
            &pool,
            &data,
            &TrainConfig {
                resume: Some(kept),
                ..cfg
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(resumed.epochs_run, 2);
        assert_eq!(
            bits(&resumed),
            bits(&whole),
            "{optimizer} ({} states, {} params), {devices} device(s)",
            state_dtype.as_str(),
            cfg.param_dtype.as_str()
        );
    }
}

/// `--accumulate 4` (each batch of 32 in four micro-batches whose gradients
/// the engine sums on the device) trains like one batch of 32: only the
/// order of the f32 sums over samples differs (8 + 8 + 8 + 8 against 32 in
/// one kernel), so after 3 epochs (135 steps) the weights agree to 1e-4 of
/// each tensor's largest magnitude (measured: about 1e-6), on one device
/// and data-parallel on two; and two accumulated runs are bitwise equal.
#[test]
fn accumulating_micro_batches_trains_like_whole_batches() {
    let data = data();
    for devices in [1, 2] {
        let pool = if devices == 1 {
            one()
        } else {
            open_devices(2).unwrap()
        };
        let cfg = TrainConfig {
            epochs: 3,
            patience: 100,
            devices,
            ..Default::default()
        };
        let whole = train(&pool, &data, &cfg, |_| {}).unwrap();
        let acc = TrainConfig {
            accumulate: 4,
            ..cfg.clone()
        };
        let micro = train(&pool, &data, &acc, |_| {}).unwrap();
        for (a, b) in micro.final_params.iter().zip(&whole.final_params) {
            let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-4 * scale, "{devices}: {x} vs {y}");
            }
        }
        assert_ne!(bits(&micro), bits(&whole), "the micro-batches really ran");
        let again = train(&pool, &data, &acc, |_| {}).unwrap();
        assert_eq!(bits(&again), bits(&micro), "{devices} device(s)");
    }
}
