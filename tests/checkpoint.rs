//! Checkpoints: bitwise round trips, resume equals an uninterrupted run, and
//! every kind of bad file refused with a clear error and nothing changed.

mod common;

use std::path::{Path, PathBuf};

use common::{Rng, gpu};
use serde_json::{Value, json};
use wgpu_optim::checkpoint::{self, Hyperparameters, LoadOptions, TrainingState};
use wgpu_optim::early_stopping::{EarlyStopping, EarlyStoppingConfig};
use wgpu_optim::grad::{GradScalerConfig, LossScale};
use wgpu_optim::optim::state::{StateData, StateDtype};
use wgpu_optim::optim::*;
use wgpu_optim::schedule::{LrScheduler, OneCycleConfig, Schedule};
use wgpu_optim::{ErrorKind, Gpu, Optimizer, ParamLayout, ParamSet};

fn layout() -> ParamLayout {
    ParamLayout::new(&[
        ("w", &[4, 5][..]),
        ("empty", &[0][..]),
        ("b", &[5][..]),
        ("long", &[300][..]),
    ])
    .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-optim-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn grads(rng: &mut Rng, l: &ParamLayout) -> Vec<Vec<f32>> {
    l.tensors()
        .iter()
        .map(|t| rng.vec(t.numel as usize, 1.0))
        .collect()
}

struct Run {
    params: ParamSet,
    opt: Optimizer,
    sched: LrScheduler,
}

fn start(gpu: &Gpu, spec: &OptimizerSpec) -> Run {
    let l = layout();
    let mut params = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
    params.write_all(gpu, &grads(&mut Rng(1), &l)).unwrap();
    let mut opt = Optimizer::new(gpu, spec, &params).unwrap();
    let peak = opt.group_hp(0).unwrap().lr;
    let sched = LrScheduler::new(
        &mut opt,
        Schedule::warmup_cosine(peak, 3, 20, 1e-5).unwrap(),
    )
    .unwrap();
    sched.apply(&mut opt).unwrap();
    Run { params, opt, sched }
}

/// Steps `from..to`; the gradients depend only on the step number.
fn train(gpu: &Gpu, r: &mut Run, from: u64, to: u64) {
    let l = layout();
    for s in from..to {
        let mut g = grads(&mut Rng(100 + s), &l);
        if s == 4 {
            g[3][7] = f32::INFINITY; // skipped when a guard is on
        }
        r.params.write_grads_all(gpu, &g).unwrap();
        r.opt.step(gpu, &mut r.params).unwrap();
        r.sched.advance(&mut r.opt).unwrap();
    }
}

fn specs() -> Vec<OptimizerSpec> {
    vec![
        OptimizerSpec::adam(AdamConfig {
            amsgrad: true,
            lr: 0.01,
            ..Default::default()
        })
        .group(ParamGroup::names(["b"]).lr(0.02)),
        OptimizerSpec::sgd(SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..Default::default()
        }),
        OptimizerSpec::adamw(AdamWConfig::default())
            .clip_by_global_norm(0.5)
            .loss_scale(LossScale::Dynamic(GradScalerConfig {
                init_scale: 4.0,
                growth_interval: 2,
                ..Default::default()
            })),
    ]
}

fn bits(gpu: &Gpu, p: &ParamSet) -> Vec<u32> {
    p.read_all(gpu)
        .unwrap()
        .concat()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// The bits of state `s` of tensor `tensor`.
fn state_bits(gpu: &Gpu, o: &Optimizer, s: &str, tensor: &str) -> Vec<u32> {
    o.read_state(gpu, s, tensor)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn resume_from_step_k_equals_an_uninterrupted_run() {
    let gpu = gpu();
    for (i, spec) in specs().into_iter().enumerate() {
        let mut whole = start(gpu, &spec);
        train(gpu, &mut whole, 0, 8);

        let mut first = start(gpu, &spec);
        train(gpu, &mut first, 0, 5);
        let path = tmp(&format!("resume{i}.safetensors"));
        let training = TrainingState {
            epoch: 5,
            scheduler: Some(first.sched.clone()),
            ..Default::default()
        };
        checkpoint::save(&path, gpu, &first.params, &mut first.opt, &training).unwrap();

        // A fresh process: new params, optimizer and scheduler, then load.
        let mut resumed = start(gpu, &spec);
        let back = checkpoint::load(&path, gpu, &mut resumed.params, &mut resumed.opt).unwrap();
        assert_eq!(back.epoch, 5);
        resumed.sched = back.scheduler.unwrap();
        resumed.sched.apply(&mut resumed.opt).unwrap();
        assert_eq!(resumed.opt.step_count(), 5);
        train(gpu, &mut resumed, 5, 8);
        assert_eq!(
            bits(gpu, &resumed.params),
            bits(gpu, &whole.params),
            "spec {i}"
        );
        for s in whole.opt.state_names() {
            for t in layout().tensors() {
                // Bitwise (the unguarded specs carry the planted Inf into NaN state).
                let b = |o: &Optimizer| state_bits(gpu, o, s, &t.name);
                assert!(b(&resumed.opt) == b(&whole.opt), "spec {i} {s} {}", t.name);
            }
        }
        assert_eq!(
            resumed.opt.gradient_state(gpu).unwrap(),
            whole.opt.gradient_state(gpu).unwrap()
        );
    }
}

#[test]
fn round_trip_keeps_everything_bitwise() {
    let gpu = gpu();
    let spec = specs().remove(0);
    let mut r = start(gpu, &spec);
    train(gpu, &mut r, 0, 3);
    let mut es = EarlyStopping::new(EarlyStoppingConfig {
        patience: 3,
        ..Default::default()
    })
    .unwrap();
    es.update(0, 1.0);
    es.update(1, 2.0);
    let mut training = TrainingState {
        epoch: 2,
        scheduler: Some(r.sched.clone()),
        early_stopping: Some(es.clone()),
        ..Default::default()
    };
    training
        .extra
        .insert("note".into(), serde_json::json!({"k": [1, 2]}));
    let path = tmp("roundtrip.safetensors");
    checkpoint::save(&path, gpu, &r.params, &mut r.opt, &training).unwrap();
    let mut other = start(gpu, &spec);
    let back = checkpoint::load(&path, gpu, &mut other.params, &mut other.opt).unwrap();
    assert_eq!(back, training);
    assert_eq!(bits(gpu, &other.params), bits(gpu, &r.params));
    assert_eq!(
        other.opt.group_hp(1).unwrap().lr,
        r.opt.group_hp(1).unwrap().lr
    );
    assert_eq!(other.opt.step_count(), 3);
    for s in ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] {
        assert_eq!(
            other.opt.read_state(gpu, s, "long").unwrap(),
            r.opt.read_state(gpu, s, "long").unwrap()
        );
    }
    // Parameters alone.
    let p = tmp("params.safetensors");
    checkpoint::export_params(&p, gpu, &r.params).unwrap();
    let mut fresh = ParamSet::new(gpu, &layout()).unwrap();
    checkpoint::import_params(&p, gpu, &mut fresh).unwrap();
    assert_eq!(
        fresh.read_all(gpu).unwrap(),
        r.params.read_all(gpu).unwrap()
    );
}

/// Everything a load may change, bitwise: params, every optimizer state of
/// every tensor, the step count, every hyperparameter of every group (the
/// lrs included) and the gradient pipeline's state.
#[derive(Debug, PartialEq)]
struct Live {
    params: Vec<u32>,
    states: Vec<(String, String, Vec<u32>)>,
    step: u64,
    hyperparameters: Vec<Vec<(&'static str, u64)>>,
    gradient_state: Option<(u64, u32, u32)>,
}

fn live(gpu: &Gpu, params: &ParamSet, opt: &mut Optimizer) -> Live {
    let mut states = Vec::new();
    for s in opt.state_names() {
        for t in params.layout().tensors() {
            let v = opt.read_state(gpu, s, &t.name).unwrap();
            states.push((
                s.to_string(),
                t.name.clone(),
                v.iter().map(|x| x.to_bits()).collect(),
            ));
        }
    }
    let hyperparameters = (0..opt.num_groups())
        .map(|g| {
            let c = opt.group_config(g).unwrap();
            c.hyperparameter_names()
                .iter()
                .map(|&n| (n, c.get(n).unwrap().to_bits()))
                .collect()
        })
        .collect();
    Live {
        params: bits(gpu, params),
        states,
        step: opt.step_count(),
        hyperparameters,
        gradient_state: opt
            .gradient_state(gpu)
            .unwrap()
            .map(|g| (g.skipped, g.scale.to_bits(), g.growth_tracker)),
    }
}

/// What a checkpoint error says, without the path (which holds the test's name).
fn reason(e: &wgpu_optim::Error) -> &str {
    match e {
        wgpu_optim::Error::Checkpoint { reason, .. } => reason,
        other => panic!("not a checkpoint error: {other}"),
    }
}

/// Checks that `run`'s live state is bitwise `before`.
fn assert_unchanged(gpu: &Gpu, before: &Live, run: &mut Run, what: &str) {
    let now = live(gpu, &run.params, &mut run.opt);
    assert!(now == *before, "{what}: the live state changed");
}

/// Saves a reference file, then checks that `corrupt` of it is refused with
/// `words` and that the live state stays as it was.
fn refused(gpu: &Gpu, name: &str, corrupt: impl Fn(&Path), words: &str) {
    refused_with(gpu, &specs()[0], name, corrupt, words);
}

/// As [`refused`], with a reference file and a live run of `spec`.
fn refused_with(gpu: &Gpu, spec: &OptimizerSpec, name: &str, corrupt: impl Fn(&Path), words: &str) {
    let mut r = start(gpu, spec);
    train(gpu, &mut r, 0, 2);
    let path = tmp(name);
    checkpoint::save(&path, gpu, &r.params, &mut r.opt, &TrainingState::default()).unwrap();
    corrupt(&path);
    let mut live_run = start(gpu, spec);
    train(gpu, &mut live_run, 0, 1);
    let before = live(gpu, &live_run.params, &mut live_run.opt);
    let e = checkpoint::load(&path, gpu, &mut live_run.params, &mut live_run.opt).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Checkpoint, "{name}: {e}");
    assert!(
        reason(&e).contains(words),
        "{name}: {e:?} should say {words:?}"
    );
    assert_unchanged(gpu, &before, &mut live_run, name);
}

fn rewrite(path: &Path, f: impl Fn(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

fn header_len(b: &[u8]) -> usize {
    u64::from_le_bytes(b[..8].try_into().unwrap()) as usize
}

/// Replaces `from` by `to` (same length) in the JSON header.
fn edit_header(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    rewrite(path, |b| {
        let n = header_len(b);
        let h = String::from_utf8(b[8..8 + n].to_vec()).unwrap();
        assert!(h.contains(from), "{from} in {h}");
        let h = h.replacen(from, to, 1);
        b[8..8 + n].copy_from_slice(h.as_bytes());
    });
}

#[test]
fn bad_files_are_refused_and_change_nothing() {
    let gpu = gpu();
    refused(
        gpu,
        "truncated",
        |p| rewrite(p, |b| b.truncate(b.len() - 10)),
        "truncated",
    );
    refused(gpu, "tiny", |p| rewrite(p, |b| b.truncate(5)), "truncated");
    refused(
        gpu,
        "flipped-data",
        |p| {
            rewrite(p, |b| {
                let i = b.len() - 3;
                b[i] ^= 0x40;
            })
        },
        "checksum mismatch",
    );
    refused(
        gpu,
        "flipped-header",
        |p| rewrite(p, |b| b[9] ^= 0x7f),
        "corrupt header",
    );
    refused(
        gpu,
        "wrong-version",
        |p| edit_header(p, "\"version\":\"2\"", "\"version\":\"9\""),
        "version 9 is not supported; this build reads version 1 and 2",
    );
    refused(
        gpu,
        "wrong-shape",
        |p| rewrite_header(p, |h, _| h["param.w"]["shape"] = json!([5, 4])),
        "tensor `param.w` has shape [5, 4], expected [4, 5]",
    );
    refused(
        gpu,
        "missing",
        |p| edit_header(p, "\"param.b\"", "\"param.x\""),
        "missing tensor `param.b`",
    );
    refused(
        gpu,
        "dtype",
        |p| edit_header(p, "\"F32\"", "\"I32\""),
        "dtype I32",
    );
    refused(
        gpu,
        "nofile",
        |p| std::fs::remove_file(p).unwrap(),
        "cannot open",
    );
}

#[test]
fn a_mismatched_optimizer_or_layout_is_refused() {
    let gpu = gpu();
    let mut adam = start(gpu, &specs()[0]);
    let path = tmp("adam.safetensors");
    checkpoint::save(
        &path,
        gpu,
        &adam.params,
        &mut adam.opt,
        &TrainingState::default(),
    )
    .unwrap();
    let mut sgd = start(gpu, &specs()[1]);
    let e = checkpoint::load(&path, gpu, &mut sgd.params, &mut sgd.opt).unwrap_err();
    assert!(
        e.to_string()
            .contains("optimizer is adam, the live optimizer is sgd"),
        "{e}"
    );
    let plain_adam = OptimizerSpec::adam(AdamConfig {
        lr: 0.01,
        ..Default::default()
    })
    .group(ParamGroup::names(["b"]).lr(0.02));
    let mut no_ams = start(gpu, &plain_adam);
    let e = checkpoint::load(&path, gpu, &mut no_ams.params, &mut no_ams.opt).unwrap_err();
    assert!(e.to_string().contains("state keys"), "{e}");
    let other_layout = ParamLayout::new(&[("w", &[20][..])]).unwrap();
    let mut p = ParamSet::new(gpu, &other_layout).unwrap();
    let mut o = Optimizer::new(gpu, &specs()[0].clone(), &p).unwrap_or_else(|_| {
        Optimizer::new(
            gpu,
            &OptimizerSpec::adam(AdamConfig {
                amsgrad: true,
                ..Default::default()
            }),
            &p,
        )
        .unwrap()
    });
    let e = checkpoint::load(&path, gpu, &mut p, &mut o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Checkpoint, "{e}");
    // A params-only file is not a checkpoint, and the other way round.
    let pp = tmp("only-params.safetensors");
    checkpoint::export_params(&pp, gpu, &adam.params).unwrap();
    let e = checkpoint::load(&pp, gpu, &mut adam.params, &mut adam.opt).unwrap_err();
    assert!(
        e.to_string().contains("format is \"wgpu-optim-params\""),
        "{e}"
    );
    let e = checkpoint::import_params(&path, gpu, &mut adam.params).unwrap_err();
    assert!(e.to_string().contains("format"), "{e}");
}

#[test]
fn a_failed_write_leaves_the_previous_file_intact() {
    let gpu = gpu();
    let mut r = start(gpu, &specs()[0]);
    // Its own folder: other tests write temporary files next to theirs.
    let path = tmp("atomic").join("atomic.safetensors");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    checkpoint::save(&path, gpu, &r.params, &mut r.opt, &TrainingState::default()).unwrap();
    let before = std::fs::read(&path).unwrap();
    // A closure schedule cannot be serialized: the save fails before rename.
    let bad = TrainingState {
        scheduler: Some(
            LrScheduler::new(&mut r.opt, Schedule::from_fn(std::sync::Arc::new(|_| 0.1))).unwrap(),
        ),
        ..Default::default()
    };
    train(gpu, &mut r, 0, 2);
    let e = checkpoint::save(&path, gpu, &r.params, &mut r.opt, &bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Checkpoint, "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // A folder that does not exist: an error, no stray file.
    let e = checkpoint::save(
        Path::new("/nonexistent-dir/x.safetensors"),
        gpu,
        &r.params,
        &mut r.opt,
        &TrainingState::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Checkpoint);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn save_and_load_refuse_a_param_set_the_optimizer_was_not_built_for() {
    let gpu = gpu();
    let spec = &specs()[0];
    let mut a = start(gpu, spec);
    let mut b = start(gpu, spec);
    train(gpu, &mut a, 0, 2);
    let path = tmp("foreign").join("foreign.safetensors");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // params of B with the optimizer of A: refused, nothing written.
    let e =
        checkpoint::save(&path, gpu, &b.params, &mut a.opt, &TrainingState::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
    assert!(e.to_string().contains("was built for ParamSet"), "{e}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        0
    );
    // A good file, loaded into params of B through the optimizer of A.
    checkpoint::save(&path, gpu, &a.params, &mut a.opt, &TrainingState::default()).unwrap();
    let before_a = live(gpu, &a.params, &mut a.opt);
    let before_b = live(gpu, &b.params, &mut b.opt);
    let e = checkpoint::load(&path, gpu, &mut b.params, &mut a.opt).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
    assert!(e.to_string().contains("was built for ParamSet"), "{e}");
    assert_unchanged(gpu, &before_a, &mut a, "optimizer A");
    assert_unchanged(gpu, &before_b, &mut b, "params B");
}

/// Rewrites the file with `f` applied to its header (as JSON) and its data
/// section; the header is padded with spaces to 8 bytes, as safetensors does.
fn rewrite_header(path: &Path, f: impl Fn(&mut serde_json::Value, &mut Vec<u8>)) {
    rewrite(path, |b| {
        let n = header_len(b);
        let mut h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
        let mut data = b[8 + n..].to_vec();
        f(&mut h, &mut data);
        let mut text = serde_json::to_string(&h).unwrap().into_bytes();
        while !text.len().is_multiple_of(8) {
            text.push(b' ');
        }
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend(text);
        out.extend(data);
        *b = out;
    });
}

/// The name of the tensor whose bytes come last (the largest end, then start).
fn last_tensor(h: &serde_json::Value) -> String {
    h.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .max_by_key(|(_, v)| {
            let o = &v["data_offsets"];
            (o[1].as_u64().unwrap(), o[0].as_u64().unwrap())
        })
        .unwrap()
        .0
        .clone()
}

fn shift(h: &mut serde_json::Value, name: &str, by: i64) {
    let o = &mut h[name]["data_offsets"];
    for i in 0..2 {
        o[i] = serde_json::json!(o[i].as_u64().unwrap() as i64 + by);
    }
}

#[test]
fn tensor_ranges_that_overlap_leave_holes_or_pass_the_end_are_refused() {
    let gpu = gpu();
    refused(
        gpu,
        "overlap",
        |p| {
            rewrite_header(p, |h, _| {
                let last = last_tensor(h);
                assert!(h[&last]["data_offsets"][0].as_u64().unwrap() >= 4);
                shift(h, &last, -4);
            })
        },
        "overlaps tensor",
    );
    refused(
        gpu,
        "hole",
        |p| {
            rewrite_header(p, |h, data| {
                let last = last_tensor(h);
                shift(h, &last, 4);
                data.extend([0; 4]);
            })
        },
        "belong to no tensor (a hole",
    );
    refused(
        gpu,
        "padded",
        |p| rewrite_header(p, |_, data| data.extend([0; 4])),
        "padded: bytes",
    );
    refused(
        gpu,
        "backwards",
        |p| {
            rewrite_header(p, |h, _| {
                let o = &mut h["param.w"]["data_offsets"];
                let (b, e) = (o[0].clone(), o[1].clone());
                *o = serde_json::json!([e, b]);
            })
        },
        "ends before it begins",
    );
    // A data offset of 2^64 - 1 is named as such, not as a wrong total size.
    for (name, offsets) in [
        ("end-max", serde_json::json!([0, u64::MAX])),
        ("both-max", serde_json::json!([u64::MAX, u64::MAX])),
    ] {
        refused(
            gpu,
            name,
            |p| rewrite_header(p, |h, _| h["param.w"]["data_offsets"] = offsets.clone()),
            &format!(
                "tensor `param.w` spans bytes [{}, 18446744073709551615)",
                offsets[0]
            ),
        );
    }
    refused(
        gpu,
        "duplicate-key",
        |p| edit_header(p, "\"param.b\"", "\"param.w\""),
        "the key `param.w` appears twice",
    );
    refused(
        gpu,
        "unknown-field",
        |p| rewrite_header(p, |h, _| h["param.b"]["extra"] = serde_json::json!(1)),
        "unknown field `extra`",
    );
}

#[test]
fn two_threads_saving_to_one_path_always_leave_one_whole_checkpoint() {
    let dir = tmp("race");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("race.safetensors");
    let spec = specs()[1].clone();
    // Two runs on their own devices, with different states.
    let finals: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|k| {
                let (path, spec) = (path.clone(), spec.clone());
                s.spawn(move || {
                    let gpu = common::new_gpu();
                    let mut r = start(&gpu, &spec);
                    train(&gpu, &mut r, 0, 1 + 2 * k);
                    let mine = bits(&gpu, &r.params);
                    let mut other = start(&gpu, &spec);
                    for _ in 0..15 {
                        checkpoint::save(&path, &gpu, &r.params, &mut r.opt, &Default::default())
                            .unwrap();
                        // Whatever is on disk now loads: ours or the other thread's.
                        checkpoint::load(&path, &gpu, &mut other.params, &mut other.opt).unwrap();
                        let step = other.opt.step_count();
                        assert!(step == 1 || step == 3, "step {step}");
                        if step == 1 + 2 * k {
                            assert_eq!(bits(&gpu, &other.params), mine);
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(finals[0], finals[1], "the two runs differ");
    let gpu = gpu();
    let mut r = start(gpu, &spec);
    checkpoint::load(&path, gpu, &mut r.params, &mut r.opt).unwrap();
    let on_disk = bits(gpu, &r.params);
    assert!(on_disk == finals[0] || on_disk == finals[1]);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// FNV-1a 64, as the module docs of `checkpoint` define the checksums.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Rewrites the `wgpu_optim` document with `f` and records its new checksum:
/// a file whose metadata lies consistently, as a buggy writer would make it.
fn rewrite_meta(path: &Path, f: impl Fn(&mut Value)) {
    rewrite_header(path, |h, _| {
        let mut doc: Value =
            serde_json::from_str(h["__metadata__"]["wgpu_optim"].as_str().unwrap()).unwrap();
        f(&mut doc);
        let text = serde_json::to_string(&doc).unwrap();
        h["__metadata__"]["wgpu_optim_checksum"] =
            json!(format!("{:016x}", fnv1a(text.as_bytes())));
        h["__metadata__"]["wgpu_optim"] = json!(text);
    })
}

#[test]
fn a_load_with_an_invalid_gradient_state_changes_nothing() {
    let gpu = gpu();
    let dynamic = &specs()[2];
    for (name, scale, words) in [
        (
            "scale-0",
            json!(0.0),
            "gradient_state.scale (the loss scale) is 0;",
        ),
        (
            "scale-neg",
            json!(-1.0),
            "gradient_state.scale (the loss scale) is -1;",
        ),
        (
            "scale-1e39",
            json!(1e39),
            "is 1e39 (not finite in f32); allowed: a finite number > 0",
        ),
    ] {
        refused_with(
            gpu,
            dynamic,
            name,
            |p| rewrite_meta(p, |d| d["gradient_state"]["scale"] = scale.clone()),
            words,
        );
    }
    refused_with(
        gpu,
        dynamic,
        "tracker",
        |p| rewrite_meta(p, |d| d["gradient_state"]["growth_tracker"] = json!(2)),
        "gradient_state.growth_tracker is 2; allowed: < 2, the live loss scaler's growth_interval",
    );
    // Without a dynamic loss scale the device scale is 1.
    let clip_only = OptimizerSpec::adam(AdamConfig::default()).clip_by_global_norm(1.0);
    refused_with(
        gpu,
        &clip_only,
        "static-scale",
        |p| rewrite_meta(p, |d| d["gradient_state"]["scale"] = json!(4.0)),
        "loss scale 4 and growth tracker 0, but the live optimizer has no dynamic loss scale",
    );
}

#[test]
fn a_load_of_a_step_that_cannot_continue_changes_nothing() {
    let gpu = gpu();
    let dynamic = &specs()[2];
    refused_with(
        gpu,
        dynamic,
        "step-max",
        |p| rewrite_meta(p, |d| d["step"] = json!(u64::MAX)),
        "step is 18446744073709551615: the next step would overflow",
    );
    refused_with(
        gpu,
        dynamic,
        "skipped-past-step",
        |p| rewrite_meta(p, |d| d["gradient_state"]["skipped"] = json!(3)),
        "gradient_state.skipped is 3, more than the 2 steps taken",
    );
    refused_with(
        gpu,
        dynamic,
        "skipped-u32",
        |p| {
            rewrite_meta(p, |d| {
                d["step"] = json!(1u64 << 40);
                d["gradient_state"]["skipped"] = json!(u32::MAX);
            })
        },
        "gradient_state.skipped is 4294967295; the device counts skipped steps in a u32",
    );
}

#[test]
fn an_edited_metadata_byte_is_refused_by_the_metadata_checksum() {
    let gpu = gpu();
    refused(
        gpu,
        "edited-step",
        |p| edit_header(p, r#"\"step\":2,"#, r#"\"step\":7,"#),
        "metadata checksum mismatch: the `wgpu_optim` document hashes to",
    );
    refused(
        gpu,
        "edited-epoch",
        |p| edit_header(p, r#"\"epoch\":0,"#, r#"\"epoch\":9,"#),
        "metadata checksum mismatch",
    );
    refused(
        gpu,
        "no-checksum",
        |p| {
            rewrite_header(p, |h, _| {
                h["__metadata__"]
                    .as_object_mut()
                    .unwrap()
                    .remove("wgpu_optim_checksum");
            })
        },
        "no `wgpu_optim_checksum` metadata: the `wgpu_optim` document cannot be verified",
    );
    refused(
        gpu,
        "extra-key",
        |p| rewrite_header(p, |h, _| h["__metadata__"]["note"] = json!("hi")),
        "unexpected metadata key `note`",
    );
    // Metadata that is consistently wrong is refused by what it says.
    refused(
        gpu,
        "ghost-checksum",
        |p| {
            rewrite_meta(p, |d| {
                d["checksums"]["param.ghost"] = json!("0000000000000000")
            })
        },
        "a checksum is recorded for `param.ghost`, which the file does not hold",
    );
    refused(
        gpu,
        "inner-version",
        |p| rewrite_meta(p, |d| d["version"] = json!(1)),
        "the `wgpu_optim` document says format \"wgpu-optim-checkpoint\" version 1",
    );
}

#[test]
fn saved_hyperparameters_must_match_unless_taken_from_the_file() {
    let gpu = gpu();
    let adamw = |wd: f64, beta2: f64| {
        OptimizerSpec::adamw(AdamWConfig {
            weight_decay: wd,
            ..Default::default()
        })
        .group(ParamGroup::names(["b"]).betas(0.8, beta2))
    };
    let mut saved = start(gpu, &adamw(0.1, 0.99));
    train(gpu, &mut saved, 0, 2);
    let path = tmp("hyper.safetensors");
    checkpoint::save(
        &path,
        gpu,
        &saved.params,
        &mut saved.opt,
        &TrainingState::default(),
    )
    .unwrap();
    for (spec, words) in [
        (
            adamw(0.0, 0.99),
            "param group 0: `weight_decay` is 0.1 in the file but 0 in the live optimizer",
        ),
        (
            adamw(0.1, 0.999),
            "param group 1: `beta2` is 0.99 in the file but 0.999 in the live optimizer",
        ),
    ] {
        let mut l = start(gpu, &spec);
        train(gpu, &mut l, 0, 1);
        let before = live(gpu, &l.params, &mut l.opt);
        let e = checkpoint::load(&path, gpu, &mut l.params, &mut l.opt).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Checkpoint);
        assert!(reason(&e).contains(words), "{e}");
        assert!(reason(&e).contains("Hyperparameters::FromFile"), "{e}");
        assert_unchanged(gpu, &before, &mut l, words);
    }
    // Taken from the file: every hyperparameter of every group, and the next
    // step is the saved run's next step, bit for bit.
    let mut l = start(gpu, &adamw(0.0, 0.999));
    let from_file = LoadOptions {
        hyperparameters: Hyperparameters::FromFile,
    };
    checkpoint::load_with(&path, gpu, &mut l.params, &mut l.opt, from_file).unwrap();
    for g in 0..2 {
        let (a, b) = (
            l.opt.group_config(g).unwrap(),
            saved.opt.group_config(g).unwrap(),
        );
        for &n in a.hyperparameter_names() {
            assert_eq!(
                a.get(n).unwrap().to_bits(),
                b.get(n).unwrap().to_bits(),
                "{g} {n}"
            );
        }
    }
    train(gpu, &mut saved, 2, 3);
    train(gpu, &mut l, 2, 3);
    assert_eq!(bits(gpu, &l.params), bits(gpu, &saved.params));
    // An invalid saved value is refused either way, nothing changed.
    let bad = tmp("hyper-bad.safetensors");
    std::fs::copy(&path, &bad).unwrap();
    rewrite_meta(&bad, |d| {
        d["groups"][0]["hyperparameters"]["beta1"] = json!(1.5)
    });
    for options in [LoadOptions::default(), from_file] {
        let mut l = start(gpu, &adamw(0.1, 0.99));
        let before = live(gpu, &l.params, &mut l.opt);
        let e = checkpoint::load_with(&bad, gpu, &mut l.params, &mut l.opt, options).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Checkpoint);
        assert!(reason(&e).contains("param group 0: "), "{e}");
        assert!(reason(&e).contains("1.5"), "{e}");
        assert_unchanged(gpu, &before, &mut l, "beta1 = 1.5");
    }
    // A field the optimizer does not have.
    rewrite_meta(&bad, |d| {
        d["groups"][0]["hyperparameters"]["beta1"] = json!(0.9);
        d["groups"][1]["hyperparameters"]["rho"] = json!(0.9);
    });
    let mut l = start(gpu, &adamw(0.1, 0.99));
    let e = checkpoint::load(&bad, gpu, &mut l.params, &mut l.opt).unwrap_err();
    assert!(
        reason(&e).contains(
            "param group 1: the file has a hyperparameter `rho`, which adamw does not have"
        ),
        "{e}"
    );
}

#[test]
fn a_cycled_momentum_is_taken_from_the_file_like_the_lr() {
    let gpu = gpu();
    let spec = OptimizerSpec::sgd(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    });
    let l = layout();
    let build = || {
        let mut params = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
        params.write_all(gpu, &grads(&mut Rng(1), &l)).unwrap();
        let opt = Optimizer::new(gpu, &spec, &params).unwrap();
        (params, opt)
    };
    let (mut params, mut opt) = build();
    let mut sched = LrScheduler::new(
        &mut opt,
        Schedule::one_cycle(OneCycleConfig::new(0.1, 20)).unwrap(),
    )
    .unwrap();
    for s in 0..4 {
        params
            .write_grads_all(gpu, &grads(&mut Rng(100 + s), &l))
            .unwrap();
        opt.step(gpu, &mut params).unwrap();
        sched.advance(&mut opt).unwrap();
    }
    let momentum = opt.momentum().unwrap();
    assert_ne!(momentum, 0.9, "one-cycle moved the momentum");
    let with_sched = tmp("cycled.safetensors");
    let training = TrainingState {
        scheduler: Some(sched.clone()),
        ..Default::default()
    };
    checkpoint::save(&with_sched, gpu, &params, &mut opt, &training).unwrap();
    let (mut p2, mut o2) = build();
    let back = checkpoint::load(&with_sched, gpu, &mut p2, &mut o2).unwrap();
    assert_eq!(o2.momentum(), Some(momentum));
    assert_eq!(o2.lrs(), opt.lrs());
    back.scheduler.unwrap().apply(&mut o2).unwrap();
    assert_eq!(o2.momentum(), Some(momentum));
    // Without the scheduler that cycles it, the momentum must match.
    let without = tmp("cycled-no-sched.safetensors");
    checkpoint::save(&without, gpu, &params, &mut opt, &TrainingState::default()).unwrap();
    let (mut p3, mut o3) = build();
    let e = checkpoint::load(&without, gpu, &mut p3, &mut o3).unwrap_err();
    assert!(
        reason(&e).contains(&format!(
            "param group 0: `momentum` is {momentum} in the file but 0.9 in the live optimizer"
        )),
        "{e}"
    );
}

/// Rewrites a file of this build as version 1 wrote it: no metadata
/// checksum, `lr`, `weight_decay` and `l1` per group.
fn as_version_1(path: &Path, edit: impl Fn(&mut Value)) {
    rewrite_header(path, |h, _| {
        let m = h["__metadata__"].as_object_mut().unwrap();
        let mut doc: Value = serde_json::from_str(m["wgpu_optim"].as_str().unwrap()).unwrap();
        doc["version"] = json!(1);
        for g in doc["groups"].as_array_mut().unwrap() {
            let hp = &g["hyperparameters"];
            *g = json!({"lr": hp["lr"], "weight_decay": hp["weight_decay"], "l1": hp["l1"]});
        }
        edit(&mut doc);
        m.remove("wgpu_optim_checksum");
        m.insert("version".into(), json!("1"));
        m.insert(
            "wgpu_optim".into(),
            json!(serde_json::to_string(&doc).unwrap()),
        );
    });
}

#[test]
fn a_version_1_checkpoint_still_loads() {
    let gpu = gpu();
    let spec = &specs()[0];
    let mut r = start(gpu, spec);
    train(gpu, &mut r, 0, 3);
    let path = tmp("v1.safetensors");
    checkpoint::save(&path, gpu, &r.params, &mut r.opt, &TrainingState::default()).unwrap();
    as_version_1(&path, |_| {});
    let mut other = start(gpu, spec);
    checkpoint::load(&path, gpu, &mut other.params, &mut other.opt).unwrap();
    assert_eq!(
        live(gpu, &other.params, &mut other.opt),
        live(gpu, &r.params, &mut r.opt)
    );
    // Its weight decay is compared too.
    let wd = tmp("v1-wd.safetensors");
    checkpoint::save(&wd, gpu, &r.params, &mut r.opt, &TrainingState::default()).unwrap();
    as_version_1(&wd, |d| d["groups"][1]["weight_decay"] = json!(0.5));
    let mut l = start(gpu, spec);
    let before = live(gpu, &l.params, &mut l.opt);
    let e = checkpoint::load(&wd, gpu, &mut l.params, &mut l.opt).unwrap_err();
    assert!(
        reason(&e).contains("param group 1: `weight_decay` is 0.5 in the file but 0 in the live"),
        "{e}"
    );
    assert_unchanged(gpu, &before, &mut l, "v1 weight decay");
}

/// One step with the gradients of step `s`, NaN in `w` when `nan`.
fn step_with(gpu: &Gpu, r: &mut Run, s: u64, nan: bool) -> wgpu_optim::Result<()> {
    let mut g = grads(&mut Rng(100 + s), &layout());
    if nan {
        g[0][0] = f32::NAN;
    }
    r.params.write_grads_all(gpu, &g).unwrap();
    r.opt.step(gpu, &mut r.params)
}

fn new_skips(e: wgpu_optim::Error) -> u64 {
    match e {
        wgpu_optim::Error::NonFinite { skipped, .. } => skipped,
        other => panic!("not a NonFinite error: {other}"),
    }
}

#[test]
fn after_a_load_the_first_step_reports_no_stale_skip_and_the_next_skip_is_reported() {
    use wgpu_optim::grad::NonFinite;
    let gpu = gpu();
    let spec = OptimizerSpec::adam(AdamConfig::default()).nonfinite(NonFinite::Error);
    // A: one skipped step, reported; saved with skipped = 1.
    let mut a = start(gpu, &spec);
    step_with(gpu, &mut a, 0, true).unwrap();
    assert_eq!(new_skips(a.opt.stats(gpu).unwrap_err()), 1);
    step_with(gpu, &mut a, 1, false).unwrap();
    let path = tmp("readback.safetensors");
    checkpoint::save(&path, gpu, &a.params, &mut a.opt, &TrainingState::default()).unwrap();
    // B: skips of its own, reported, then one more with its read in flight.
    let mut b = start(gpu, &spec);
    for s in 0..3 {
        let _ = step_with(gpu, &mut b, s, true);
    }
    let _ = b.opt.stats(gpu);
    step_with(gpu, &mut b, 3, true).unwrap();
    checkpoint::load(&path, gpu, &mut b.params, &mut b.opt).unwrap();
    assert_eq!(b.opt.step_count(), 2);
    // The read from before the load is gone: no stale error.
    step_with(gpu, &mut b, 2, false).unwrap();
    // A real skip after the load is reported, exactly once.
    step_with(gpu, &mut b, 3, true).unwrap();
    assert_eq!(new_skips(b.opt.stats(gpu).unwrap_err()), 1);
    let s = b.opt.stats(gpu).unwrap();
    assert_eq!(s.skipped_steps, 2);
    assert_eq!(s.host_step, 4);
}

#[test]
fn a_save_right_after_a_skipped_step_succeeds_and_leaves_the_report_to_stats() {
    use wgpu_optim::grad::NonFinite;
    let gpu = gpu();
    let spec = OptimizerSpec::adam(AdamConfig::default()).nonfinite(NonFinite::Error);
    let mut a = start(gpu, &spec);
    step_with(gpu, &mut a, 0, false).unwrap();
    step_with(gpu, &mut a, 1, true).unwrap();
    let path = tmp("after-skip.safetensors");
    checkpoint::save(&path, gpu, &a.params, &mut a.opt, &TrainingState::default()).unwrap();
    // The save neither reported nor swallowed the skip.
    assert_eq!(new_skips(a.opt.stats(gpu).unwrap_err()), 1);
    assert_eq!(a.opt.stats(gpu).unwrap().skipped_steps, 1);
    // The file holds it: a resumed run has seen it and reports only new ones.
    let mut b = start(gpu, &spec);
    checkpoint::load(&path, gpu, &mut b.params, &mut b.opt).unwrap();
    let s = b.opt.stats(gpu).unwrap();
    assert_eq!((s.skipped_steps, s.host_step), (1, 2));
    assert_eq!(bits(gpu, &b.params), bits(gpu, &a.params));
}

/// Issue 15: an invalid early-stopping state in a checkpoint gave a JSON
/// error that named no field. The error now names the path of the field.
#[test]
fn a_bad_field_deep_in_the_training_state_is_named_by_its_path() {
    let gpu = gpu();
    let es = EarlyStopping::new(EarlyStoppingConfig::default()).unwrap();
    let mut bad = serde_json::to_value(&es).unwrap();
    bad["config"]["patience"] = json!(-1);
    refused(
        gpu,
        "bad-early-stopping.safetensors",
        |p| rewrite_meta(p, |doc| doc["training"]["early_stopping"] = bad.clone()),
        "training.early_stopping.config.patience",
    );
}

/// One case of the shared table (`tests/common/cases.rs`): 3 steps, save,
/// a fresh optimizer loads, 3 more steps; params and every state are
/// bitwise those of 6 uninterrupted steps.
fn resumes_bitwise(name: &str, spec: &OptimizerSpec) {
    let gpu = gpu();
    let l = ParamLayout::new(&[
        ("empty", &[0][..]),
        ("one", &[1][..]),
        ("odd", &[3][..]),
        ("big", &[300][..]),
        ("mat", &[4, 5][..]),
        ("bias", &[5][..]),
    ])
    .unwrap();
    let path = tmp(&format!("table-{name}.safetensors"));
    let ((wp, wo), (rp, ro)) = save_and_resume(spec, &l, &path);
    assert_eq!(bits(gpu, &rp), bits(gpu, &wp), "{name}: params");
    for s in wo.state_names() {
        for t in l.tensors() {
            let b = |o: &Optimizer| state_bits(gpu, o, s, &t.name);
            assert!(b(&ro) == b(&wo), "{name}: {s} of {}", t.name);
        }
    }
    std::fs::remove_file(&path).ok();
}

/// 6 uninterrupted steps of `spec` on `l` (chunks of 128 elements), and 3
/// steps saved to `path`, loaded into a fresh optimizer and continued for 3
/// more: `((uninterrupted params, optimizer), (resumed params, optimizer))`.
fn save_and_resume(
    spec: &OptimizerSpec,
    l: &ParamLayout,
    path: &Path,
) -> ((ParamSet, Optimizer), (ParamSet, Optimizer)) {
    let gpu = gpu();
    let fresh = || {
        let mut params = ParamSet::with_chunk_elems(gpu, l, 128).unwrap();
        params.write_all(gpu, &grads(&mut Rng(3), l)).unwrap();
        let opt = Optimizer::new(gpu, spec, &params).unwrap();
        (params, opt)
    };
    let steps = |p: &mut ParamSet, o: &mut Optimizer, from: u64, to: u64| {
        for s in from..to {
            p.write_grads_all(gpu, &grads(&mut Rng(50 + s), l)).unwrap();
            o.step(gpu, p).unwrap();
        }
    };
    let (mut wp, mut wo) = fresh();
    steps(&mut wp, &mut wo, 0, 6);
    let (mut fp, mut fo) = fresh();
    steps(&mut fp, &mut fo, 0, 3);
    checkpoint::save(path, gpu, &fp, &mut fo, &TrainingState::default()).unwrap();
    let (mut rp, mut ro) = fresh();
    checkpoint::load(path, gpu, &mut rp, &mut ro).unwrap();
    steps(&mut rp, &mut ro, 3, 6);
    ((wp, wo), (rp, ro))
}

/// One test per case of the shared table.
mod every_optimizer_resumes_bitwise {
    crate::optimizer_cases!(super::resumes_bitwise);
}

/// Schedule-Free saved in eval mode (params = x, as schedulefree advises
/// for checkpoints): the file records the mode, a fresh optimizer loads
/// into eval mode, and train() then step() continue bitwise as the run that
/// was never saved; the running state (lr_max, weight_sum) comes from the
/// file although the fresh optimizer's differs. A file saved in eval mode
/// cannot be loaded into an optimizer without one, and changes nothing.
#[test]
fn schedule_free_resumes_from_eval_mode_bitwise() {
    let gpu = gpu();
    let l = layout();
    let spec = OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig {
        lr: 0.01,
        warmup_steps: 3.0,
        weight_decay: 0.05,
        r: 0.5,
        ..Default::default()
    })
    .group(ParamGroup::names(["b"]).lr(0.02).betas(0.8, 0.99));
    let fresh = || {
        let mut params = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
        params.write_all(gpu, &grads(&mut Rng(3), &l)).unwrap();
        let opt = Optimizer::new(gpu, &spec, &params).unwrap();
        (params, opt)
    };
    let steps = |p: &mut ParamSet, o: &mut Optimizer, from: u64, to: u64| {
        for s in from..to {
            p.write_grads_all(gpu, &grads(&mut Rng(70 + s), &l))
                .unwrap();
            o.step(gpu, p).unwrap();
        }
    };
    let (mut wp, mut wo) = fresh();
    steps(&mut wp, &mut wo, 0, 4);
    wo.eval(gpu, &mut wp).unwrap();
    wo.train(gpu, &mut wp).unwrap();
    steps(&mut wp, &mut wo, 4, 7);

    let (mut fp, mut fo) = fresh();
    steps(&mut fp, &mut fo, 0, 4);
    fo.eval(gpu, &mut fp).unwrap();
    let path = tmp("schedule-free-eval.safetensors");
    checkpoint::save(&path, gpu, &fp, &mut fo, &TrainingState::default()).unwrap();
    let (mut rp, mut ro) = fresh();
    assert_ne!(ro.group_config(0).unwrap(), fo.group_config(0).unwrap());
    checkpoint::load(&path, gpu, &mut rp, &mut ro).unwrap();
    assert!(ro.is_eval_mode());
    assert_eq!(ro.group_config(0).unwrap(), fo.group_config(0).unwrap());
    assert_eq!(bits(gpu, &rp), bits(gpu, &fp), "x restored");
    ro.train(gpu, &mut rp).unwrap();
    steps(&mut rp, &mut ro, 4, 7);
    assert_eq!(bits(gpu, &rp), bits(gpu, &wp), "params after resuming");
    for s in wo.state_names() {
        for t in l.tensors() {
            let b = |o: &Optimizer| state_bits(gpu, o, s, &t.name);
            assert!(b(&ro) == b(&wo), "{s} of {}", t.name);
        }
    }

    // The eval-mode flag in a file of an optimizer without an eval mode
    // (a crafted file: the checksum is recomputed) is refused up front.
    let adam = OptimizerSpec::adam(AdamConfig::default());
    let mut ap = ParamSet::with_chunk_elems(gpu, &l, 128).unwrap();
    let mut ao = Optimizer::new(gpu, &adam, &ap).unwrap();
    let apath = tmp("adam-eval-flag.safetensors");
    checkpoint::save(&apath, gpu, &ap, &mut ao, &TrainingState::default()).unwrap();
    rewrite_meta(&apath, |doc| {
        doc["eval_mode"] = json!(true);
    });
    let before = bits(gpu, &ap);
    let e = checkpoint::load(&apath, gpu, &mut ap, &mut ao).unwrap_err();
    assert!(e.to_string().contains("eval mode"), "{e}");
    assert!(!ao.is_eval_mode());
    assert_eq!(bits(gpu, &ap), before);
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(&apath).ok();
}

/// States in bf16 and 8 bits (three formats in one optimizer, tensors that
/// straddle 128-element chunks, so 8-bit blocks restart at each piece) are
/// saved as BF16 and U8 + F32 absmax and resume bitwise: 3 steps, save,
/// load into a fresh optimizer, 3 more steps equal 6 uninterrupted ones,
/// params and every state as stored.
#[test]
fn low_precision_states_resume_bitwise() {
    let gpu = gpu();
    let l = layout();
    let spec = OptimizerSpec::adamw(AdamWConfig {
        lr: 0.01,
        amsgrad: true,
        ..Default::default()
    })
    .state_dtype(StateDtype::Blockwise8)
    .min_8bit_size(0)
    .group(ParamGroup::names(["b"]).state_dtype(StateDtype::F32))
    .group(ParamGroup::names(["w"]).state_dtype(StateDtype::Bf16));
    let path = tmp("low-precision.safetensors");
    let ((wp, wo), (rp, ro)) = save_and_resume(&spec, &l, &path);
    assert!(wp.pieces("long").unwrap().len() >= 2, "straddles chunks");
    let header = {
        let b = std::fs::read(&path).unwrap();
        let n = header_len(&b);
        serde_json::from_slice::<Value>(&b[8..8 + n]).unwrap()
    };
    assert_eq!(header["state.long.exp_avg"]["dtype"], "U8");
    assert_eq!(header["absmax.long.exp_avg"]["dtype"], "F32");
    // 300 elements in pieces of 128, 128 and 44: a block each.
    assert_eq!(header["absmax.long.exp_avg"]["shape"], json!([3]));
    assert_eq!(header["state.w.exp_avg_sq"]["dtype"], "BF16");
    assert_eq!(header["state.b.max_exp_avg_sq"]["dtype"], "F32");
    assert_eq!(bits(gpu, &rp), bits(gpu, &wp), "params");
    for s in wo.state_names() {
        for t in l.tensors() {
            let raw = |o: &Optimizer| o.read_state_raw(gpu, s, &t.name).unwrap();
            assert!(raw(&ro) == raw(&wo), "{s} of {}", t.name);
        }
    }
    std::fs::remove_file(&path).ok();
}

/// A checkpoint whose states have other dtypes than the live optimizer
/// stores (8 bits saved, f32 live, and the reverse; bf16 against 8 bits)
/// is refused naming the tensor, the file's dtype and the expected one,
/// and nothing live changes.
#[test]
fn a_checkpoint_with_other_state_dtypes_is_refused() {
    let gpu = gpu();
    let base = OptimizerSpec::adam(AdamConfig::default()).min_8bit_size(0);
    let pairs = [
        (
            StateDtype::Blockwise8,
            StateDtype::F32,
            "dtype U8, expected F32",
        ),
        (
            StateDtype::F32,
            StateDtype::Blockwise8,
            "dtype F32, expected U8",
        ),
        (
            StateDtype::Bf16,
            StateDtype::Blockwise8,
            "dtype BF16, expected U8",
        ),
    ];
    for (saved, live, words) in pairs {
        let mut r = start(gpu, &base.clone().state_dtype(saved));
        train(gpu, &mut r, 0, 2);
        let path = tmp(&format!(
            "dtypes-{}-{}.safetensors",
            saved.as_str(),
            live.as_str()
        ));
        checkpoint::save(&path, gpu, &r.params, &mut r.opt, &TrainingState::default()).unwrap();
        let mut other = start(gpu, &base.clone().state_dtype(live));
        train(gpu, &mut other, 0, 1);
        let before = live_state(gpu, &other);
        let e = checkpoint::load(&path, gpu, &mut other.params, &mut other.opt).unwrap_err();
        let m = e.to_string();
        assert!(m.contains(words) && m.contains("state.w."), "{m}");
        assert!(m.contains(&format!("as {}", live.as_str())), "{m}");
        assert_eq!(live_state(gpu, &other), before, "{m}");
        std::fs::remove_file(&path).ok();
    }
}

/// Params, every state as stored and the step count.
fn live_state(gpu: &Gpu, r: &Run) -> (Vec<u32>, Vec<StateData>, u64) {
    let mut states = Vec::new();
    for s in r.opt.state_names() {
        for t in layout().tensors() {
            states.push(r.opt.read_state_raw(gpu, s, &t.name).unwrap());
        }
    }
    (bits(gpu, &r.params), states, r.opt.step_count())
}

/// 8-bit blocks restart at each tensor piece, so a file saved with other
/// chunks is refused even when its absmax count matches (5000 elements in
/// pieces of 4032 + 968 have 16 + 4 blocks, in one piece 20), naming the
/// tensor and both piece lists, and nothing changes.
#[test]
fn eight_bit_states_saved_in_other_pieces_are_refused() {
    let gpu = gpu();
    let l = ParamLayout::new(&[("a", &[64][..]), ("w", &[5000][..])]).unwrap();
    let spec = OptimizerSpec::adam(AdamConfig::default()).state_dtype(StateDtype::Blockwise8);
    let build = |chunk: Option<u64>| {
        let mut params = match chunk {
            Some(c) => ParamSet::with_chunk_elems(gpu, &l, c).unwrap(),
            None => ParamSet::new(gpu, &l).unwrap(),
        };
        params.write_all(gpu, &grads(&mut Rng(4), &l)).unwrap();
        let mut opt = Optimizer::new(gpu, &spec, &params).unwrap();
        params
            .write_grads_all(gpu, &grads(&mut Rng(5), &l))
            .unwrap();
        opt.step(gpu, &mut params).unwrap();
        (params, opt)
    };
    let (saved_p, mut saved_o) = build(Some(4096));
    assert_eq!(saved_p.pieces("w").unwrap().len(), 2);
    let path = tmp("pieces.safetensors");
    checkpoint::save(
        &path,
        gpu,
        &saved_p,
        &mut saved_o,
        &TrainingState::default(),
    )
    .unwrap();
    let (mut p, mut o) = build(None);
    let before = (
        bits(gpu, &p),
        o.read_state_raw(gpu, "exp_avg", "w").unwrap(),
    );
    let m = checkpoint::load(&path, gpu, &mut p, &mut o)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("`w`") && m.contains("[4032, 968]") && m.contains("[5000]"),
        "{m}"
    );
    assert_eq!(
        (
            bits(gpu, &p),
            o.read_state_raw(gpu, "exp_avg", "w").unwrap()
        ),
        before
    );
    // The same chunks load.
    let (mut p, mut o) = build(Some(4096));
    checkpoint::load(&path, gpu, &mut p, &mut o).unwrap();
    std::fs::remove_file(&path).ok();
}
