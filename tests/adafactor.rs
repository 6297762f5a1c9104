//! Adafactor on the device against the f64 reference: vectors, matrices,
//! a batch of factored slices, a matrix of more than 256 rows (several
//! column ranges) and 64 columns (several column items), every kind of
//! row and column work item (rows of odd length, of 8 with a partial last
//! item, of 768 and of 2052 with vec4 loads; columns 64 wide, and 1024
//! wide over two ranges), a zero-length matrix, a vector cut across
//! chunks; param groups, weight decay, l1,
//! maximize, update clipping, the gradient pipeline and skipped steps;
//! torch's state shapes in checkpoints and a bitwise resume; memory held;
//! dispatches independent of the number of tensors; errors that change
//! nothing. (Goldens from torch.optim.Adafactor itself: tests/golden.rs.)

mod common;

use common::{Rng, gpu, random_tensors, widen, worst_ratio};
use wgpu_optim::grad::NonFinite;
use wgpu_optim::optim::*;
use wgpu_optim::reference::Reference;
use wgpu_optim::{Optimizer, ParamLayout, ParamSet};

/// Params and states after up to 9 steps, relative to each tensor's
/// largest entry: f32 against f64. Each update is `alpha / denom * u` with
/// `u` about 1 in size and computed from f32 sums of up to 300 squares
/// (relative error ~ 300 * 6e-8 = 2e-5 worst case, ~1e-6 typical, halved
/// by the square root); the steps add up over 9 steps. 2e-5 is the golden
/// tests' GPU tolerance; measured here on lavapipe: below 2e-7.
const RTOL: f64 = 2e-5;

/// The chunk of these tests: 32768 elements, so `long` (40,000) is cut
/// across chunks while every matrix lies in one.
const CHUNK: u64 = 32_768;

fn layout() -> ParamLayout {
    ParamLayout::new(&[
        ("v", &[5][..]),
        ("m", &[2, 3][..]),
        ("big", &[300, 70][..]),
        ("batch", &[2, 3, 5][..]),
        ("one", &[1][..]),
        ("col", &[3, 1][..]),
        ("empty", &[0, 4][..]),
        // 128 rows of 8 a work item (the last item 44 rows); columns 1024
        // wide over two ranges of rows.
        ("w8", &[300, 8][..]),
        // Rows of 768 and of 2052 (a multiple of 4, one row an item, vec4
        // loads); 2052 columns in two 1024-wide items.
        ("w768", &[3, 768][..]),
        ("w2052", &[2, 2052][..]),
        // A convolution kernel: 24 slices of 3 x 3 (a thread per column
        // and per slice).
        ("conv", &[6, 4, 3, 3][..]),
        ("long", &[40_000][..]),
        // After `long`, in the third chunk: a batch of slices with rows of 12.
        ("b12", &[2, 260, 12][..]),
    ])
    .unwrap()
}

/// `steps` steps of `spec` beside the reference, with NaN gradients at
/// `nan_at` (1-based); params compared each step, states at the end.
fn follow(spec: &OptimizerSpec, steps: u64, seed: u64, nan_at: &[u64]) -> Reference {
    let gpu = gpu();
    let layout = layout();
    let mut params = ParamSet::with_chunk_elems(gpu, &layout, CHUNK).unwrap();
    assert!(params.pieces("long").unwrap().len() >= 2, "long straddles");
    let mut rng = Rng(seed);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    params.write_all(gpu, &p0).unwrap();
    let mut opt = Optimizer::new(gpu, spec, &params).unwrap();
    let mut reference = Reference::new(spec, &layout).unwrap();
    let mut want = widen(&p0);
    let mut worst = 0.0f64;
    for step in 1..=steps {
        let mut g = random_tensors(&mut rng, &layout, 0.5);
        if nan_at.contains(&step) {
            g[2][17] = f32::NAN;
        }
        params.write_grads_all(gpu, &g).unwrap();
        opt.step(gpu, &mut params).unwrap();
        reference.step(&mut want, &widen(&g));
        let got = params.read_all(gpu).unwrap();
        for (k, t) in layout.tensors().iter().enumerate() {
            let r = worst_ratio(&got[k], &want[k], RTOL);
            assert!(r <= 1.0, "step {step} `{}`: {r} x the tolerance", t.name);
            worst = worst.max(r);
        }
    }
    eprintln!(
        "adafactor: worst param error {:e} of the tolerance unit",
        worst * RTOL
    );
    for (k, t) in layout.tensors().iter().enumerate() {
        for s in opt.tensor_state_names(&t.name).unwrap() {
            let got = opt.read_state(gpu, s, &t.name).unwrap();
            let r = worst_ratio(&got, &reference.state[s][k], RTOL);
            assert!(r <= 1.0, "{s} of `{}`: {r}", t.name);
        }
    }
    reference
}

fn adafactor(c: AdafactorConfig) -> OptimizerSpec {
    OptimizerSpec::adafactor(c)
}

#[test]
fn defaults_match_the_reference_on_every_shape() {
    follow(&adafactor(AdafactorConfig::default()), 9, 1, &[]);
}

#[test]
fn hyperparameters_and_groups_match_the_reference() {
    let cases = [
        AdafactorConfig {
            lr: 0.05,
            weight_decay: 0.1,
            ..Default::default()
        },
        // A small d clips every update to an RMS of d.
        AdafactorConfig {
            beta2_decay: -0.5,
            eps2: 1e-2,
            d: 1.0,
            maximize: true,
            l1: 0.01,
            ..Default::default()
        },
        // eps1 and eps2 large enough to act.
        AdafactorConfig {
            eps1: 0.05,
            eps2: 2.0,
            lr: 0.2,
            ..Default::default()
        },
    ];
    for c in cases {
        follow(&adafactor(c), 7, 2, &[]);
    }
    let groups = adafactor(AdafactorConfig {
        lr: 0.02,
        ..Default::default()
    })
    .group(
        ParamGroup::names(["big", "one"])
            .lr(0.1)
            .weight_decay(0.05)
            .set("d", 2.0),
    )
    .group(
        ParamGroup::names(["batch", "long"])
            .set("beta2_decay", -0.6)
            .set("eps2", 0.0),
    );
    follow(&groups, 7, 3, &[]);
}

#[test]
fn clipping_and_skipped_steps_match_the_reference() {
    // Skipped steps (NaN at 3 and 4): the device recomputes t^beta2_decay
    // and min(lr, 1 / sqrt(t)) from its own step count.
    let spec = adafactor(AdafactorConfig::default())
        .clip_by_global_norm(1.0)
        .nonfinite(NonFinite::Skip);
    let r = follow(&spec, 8, 4, &[3, 4]);
    assert_eq!(r.skipped, 2);
    assert_eq!(r.step, 6);
}

#[test]
fn states_have_torchs_shapes_in_checkpoints_and_resume_bitwise() {
    let spec = adafactor(AdafactorConfig {
        weight_decay: 0.01,
        ..Default::default()
    });
    let bytes = common::assert_resume_is_bitwise(&spec, &layout(), CHUNK, 5);
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |k: &str| file.tensor(k).unwrap().shape().to_vec();
    assert_eq!(shape("state.big.row_var"), [300, 1]);
    assert_eq!(shape("state.big.col_var"), [1, 70]);
    assert_eq!(shape("state.batch.row_var"), [2, 3, 1]);
    assert_eq!(shape("state.batch.col_var"), [2, 1, 5]);
    assert_eq!(shape("state.long.variance"), [40_000]);
    assert!(file.tensor("state.big.variance").is_err());
}

/// A factored `R x C` matrix keeps `R + C` state values (plus a scratch of
/// about `R C / 128` for the column sums' ranges and its item tables), a
/// vector one per element: far below Adam's 8 bytes per param.
#[test]
fn memory_held_is_sublinear_for_matrices() {
    let gpu = gpu();
    let layout = ParamLayout::new(&[("w", &[1024, 512][..])]).unwrap();
    let params = ParamSet::new(gpu, &layout).unwrap();
    let opt = Optimizer::new(gpu, &adafactor(AdafactorConfig::default()), &params).unwrap();
    let held = opt.device_bytes_per_param();
    let adam = Optimizer::new(gpu, &OptimizerSpec::adam(Default::default()), &params).unwrap();
    assert!(held < 0.2, "Adafactor holds {held} bytes per param");
    assert!(adam.device_bytes_per_param() > 8.0);
    let got = opt.read_state(gpu, "row_var", "w").unwrap();
    assert_eq!(got.len(), 1024);
    assert_eq!(opt.read_state(gpu, "col_var", "w").unwrap().len(), 512);
}

#[test]
fn dispatches_do_not_grow_with_the_number_of_tensors() {
    let gpu = gpu();
    let spec = adafactor(AdafactorConfig::default());
    let count = |n: usize| {
        let names: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
        let shapes: Vec<(&str, &[usize])> = names
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let shape: &[usize] = if i % 2 == 0 { &[4, 6] } else { &[9] };
                (s.as_str(), shape)
            })
            .collect();
        let layout = ParamLayout::new(&shapes).unwrap();
        let params = ParamSet::new(gpu, &layout).unwrap();
        Optimizer::new(gpu, &spec, &params)
            .unwrap()
            .dispatches_per_step()
    };
    // rows / columns, finish, measure, reduce, apply: 3 x chunks + 2.
    assert_eq!(count(2), 5);
    assert_eq!(count(60), count(2));
}

#[test]
fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let gpu = gpu();
    for (field, value, message) in [
        ("lr", -1.0, "Learning rate should be >= 0 but is: -1"),
        ("beta2_decay", 0.5, "beta2_decay should be <= 0 but is: 0.5"),
        ("eps1", -1.0, "epsilon1 should be >= 0 but is: -1"),
        ("eps2", -1.0, "epsilon2 should be >= 0 but is: -1"),
        ("d", 0.5, "Clipping threshold d should be >= 1 but is: 0.5"),
        (
            "weight_decay",
            -1.0,
            "weight_decay should be >= 0 but is: -1",
        ),
        ("lr", f64::NAN, "Learning rate"),
        ("d", 1e39, "Clipping threshold"),
    ] {
        let mut c = AdafactorConfig::default();
        let mut a = Algorithm::Adafactor(c);
        assert!(a.hyperparameter_names().contains(&field));
        match field {
            "lr" => c.lr = value,
            "beta2_decay" => c.beta2_decay = value,
            "eps1" => c.eps1 = value,
            "eps2" => c.eps2 = value,
            "d" => c.d = value,
            _ => c.weight_decay = value,
        }
        a = Algorithm::Adafactor(c);
        let err = a.validate().unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains(message),
            "{field} = {value}: {err}"
        );
    }

    // A matrix cut across chunks: refused, naming it.
    let layout = ParamLayout::new(&[("w", &[100, 100][..])]).unwrap();
    let params = ParamSet::with_chunk_elems(gpu, &layout, 4096).unwrap();
    let err = Optimizer::new(gpu, &adafactor(Default::default()), &params)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`w`") && err.contains("with_chunk_elems"),
        "{err}"
    );

    // State access: other names, lengths and formats are refused.
    let layout = layout_small();
    let mut params = ParamSet::new(gpu, &layout).unwrap();
    let mut opt = Optimizer::new(gpu, &adafactor(Default::default()), &params).unwrap();
    params
        .write_grads_all(gpu, &[vec![0.5; 12], vec![0.25; 5]])
        .unwrap();
    opt.step(gpu, &mut params).unwrap();
    let before = opt.read_state(gpu, "row_var", "w").unwrap();
    let err = opt
        .read_state(gpu, "variance", "w")
        .unwrap_err()
        .to_string();
    assert!(err.contains("row_var") && err.contains("`w`"), "{err}");
    let err = opt
        .write_state(gpu, "row_var", "w", &[1.0; 12])
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 elements") && err.contains("12"), "{err}");
    let err = opt
        .write_state_raw(gpu, "row_var", "w", &StateData::Bf16(vec![0; 3]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("f32"), "{err}");
    assert_eq!(opt.read_state(gpu, "row_var", "w").unwrap(), before);
    opt.write_state(gpu, "row_var", "w", &[1.0, 2.0, 3.0])
        .unwrap();
    assert_eq!(
        opt.read_state(gpu, "row_var", "w").unwrap(),
        [1.0, 2.0, 3.0]
    );
    assert_eq!(opt.state_shape("col_var", "w").unwrap(), [1, 4]);
    // A state the tensor does not keep has no shape (no panic on a vector).
    let err = opt.state_shape("col_var", "b").unwrap_err().to_string();
    assert!(err.contains("variance") && err.contains("`b`"), "{err}");
}

fn layout_small() -> ParamLayout {
    ParamLayout::new(&[("w", &[3, 4][..]), ("b", &[5][..])]).unwrap()
}

/// The per-tensor dispatch (one table per tensor piece, the row and column
/// items still per chunk) is bitwise the fused one; Adafactor as a later
/// part of a mixed optimizer (its blocks numbered after AdamW's, its table
/// holding the other part's tensors as empty entries) follows the
/// reference.
#[test]
fn per_tensor_dispatch_and_a_later_part() {
    use wgpu_optim::optim::Dispatch;
    let gpu = gpu();
    let layout = layout();
    let spec = adafactor(AdafactorConfig {
        weight_decay: 0.02,
        ..Default::default()
    })
    .clip_by_global_norm(1.0);
    let mut rng = Rng(21);
    let p0 = random_tensors(&mut rng, &layout, 1.0);
    let grads: Vec<Vec<Vec<f32>>> = (0..4)
        .map(|_| random_tensors(&mut rng, &layout, 0.5))
        .collect();
    let run = |spec: &OptimizerSpec, mode: Dispatch| {
        let mut params = ParamSet::with_chunk_elems(gpu, &layout, CHUNK).unwrap();
        params.write_all(gpu, &p0).unwrap();
        let mut opt = Optimizer::with_dispatch(gpu, spec, &params, mode).unwrap();
        for g in &grads {
            params.write_grads_all(gpu, g).unwrap();
            opt.step(gpu, &mut params).unwrap();
        }
        params.read_all(gpu).unwrap()
    };
    let bits = |v: Vec<Vec<f32>>| -> Vec<Vec<u32>> {
        v.iter()
            .map(|t| t.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    assert_eq!(
        bits(run(&spec, Dispatch::Fused)),
        bits(run(&spec, Dispatch::PerTensor))
    );

    let mixed = OptimizerSpec::adamw(AdamWConfig::default())
        .group(
            ParamGroup::names(["big", "w8", "b12", "long", "v"])
                .algorithm(AdafactorConfig::default()),
        )
        .clip_by_global_norm(1.0);
    let got = run(&mixed, Dispatch::Fused);
    let mut reference = Reference::new(&mixed, &layout).unwrap();
    let mut want = widen(&p0);
    for g in &grads {
        reference.step(&mut want, &widen(g));
    }
    for (k, t) in layout.tensors().iter().enumerate() {
        let r = worst_ratio(&got[k], &want[k], RTOL);
        assert!(r <= 1.0, "`{}`: {r} x the tolerance", t.name);
    }
}
