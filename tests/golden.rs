//! The f64 reference and the GPU kernels against trajectories produced by
//! PyTorch itself (`tests/golden/gen_optim.py` wrote `optim.json`).

mod common;

use common::{golden, gpu, to_f32, worst_ratio};
use wgpu_optim::reference::Reference;
use wgpu_optim::{Optimizer, ParamSet};

/// The reference runs in f64 like the golden script, on the same f32-exact
/// inputs, with the same operation order; only f64 rounding separates them:
/// 1e-12 relative (to the element and its tensor's magnitude) leaves room for
/// some thousand roundings of 1.1e-16 each.
const REF_RTOL: f64 = 1e-12;

/// The GPU computes in f32 (unit roundoff 6e-8). One step does about ten
/// roundings per element and the golden run has 8 steps, so about 5e-6
/// relative error can build up; 2e-5 gives a 4x margin.
const GPU_RTOL: f64 = 2e-5;

#[test]
fn golden_file_covers_every_optimizer() {
    let g = golden();
    assert!(g.torch_version.starts_with('2'), "{}", g.torch_version);
    // Every optimizer of the registry has PyTorch goldens.
    for a in wgpu_optim::optim::Algorithm::all_defaults() {
        let name = a.name();
        assert!(g.cases.iter().any(|c| c.optimizer == name), "{name}");
    }
    assert!(
        g.cases
            .iter()
            .all(|c| c.params.len() == g.steps && g.steps >= 7)
    );
}

#[test]
fn reference_matches_pytorch_golden_trajectories() {
    for case in golden().cases {
        let layout = case.layout();
        let mut r = Reference::new(&case.spec(), &layout).unwrap();
        let mut params = case.params0.clone();
        for (s, grads) in case.grads.iter().enumerate() {
            r.step(&mut params, grads);
            for (k, p) in params.iter().enumerate() {
                let p32: Vec<f32> = p.iter().map(|&x| x as f32).collect();
                // Compare in f64: worst_ratio takes f32 for the first argument,
                // so check the f64 difference directly here.
                let want = &case.params[s][k];
                let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
                for (i, (a, b)) in p.iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() <= REF_RTOL * (b.abs() + scale),
                        "{} step {} tensor {k} [{i}]: reference {a} vs torch {b}",
                        case.name,
                        s + 1
                    );
                }
                let _ = p32;
            }
        }
        for (name, want) in &case.state {
            let got = &r.state[name.as_str()];
            for (k, (a, b)) in got.iter().zip(want).enumerate() {
                let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= REF_RTOL * (y.abs() + scale),
                        "{} state {name} tensor {k}: {x} vs {y}",
                        case.name
                    );
                }
            }
        }
        assert_eq!(
            r.state.keys().copied().collect::<Vec<_>>(),
            case.state.keys().map(|s| s.as_str()).collect::<Vec<_>>(),
            "{}: the state keys are PyTorch's",
            case.name
        );
        // Schedule-Free: the running state of every group, then eval().
        // torch's groups are ours from 1 on when the case has groups (our
        // base group 0 then holds no tensor).
        let ours = |g: usize| g + (!case.groups.is_empty()) as usize;
        for (g, want) in case.running.iter().enumerate() {
            for (name, &b) in want {
                let a = r.group(ours(g)).get(name).unwrap();
                assert!(
                    (a - b).abs() <= REF_RTOL * b.abs(),
                    "{} group {g} {name}: {a} vs {b}",
                    case.name
                );
            }
        }
        if let Some(want) = &case.params_eval {
            r.swap(&mut params, true);
            for (k, (p, w)) in params.iter().zip(want).enumerate() {
                let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
                for (a, b) in p.iter().zip(w) {
                    assert!(
                        (a - b).abs() <= REF_RTOL * (b.abs() + scale),
                        "{} eval tensor {k}: {a} vs {b}",
                        case.name
                    );
                }
            }
        }
    }
}

#[test]
fn gpu_matches_pytorch_golden_trajectories() {
    let gpu = gpu();
    let mut worst: (f64, String) = (0.0, String::new());
    for case in golden().cases {
        let layout = case.layout();
        let names = case.names();
        let mut params = ParamSet::new(gpu, &layout).unwrap();
        params.write_all(gpu, &to_f32(&case.params0)).unwrap();
        let mut opt = Optimizer::new(gpu, &case.spec(), &params).unwrap();
        for (s, grads) in case.grads.iter().enumerate() {
            params.write_grads_all(gpu, &to_f32(grads)).unwrap();
            opt.step(gpu, &mut params).unwrap();
            let got = params.read_all(gpu).unwrap();
            for (k, want) in case.params[s].iter().enumerate() {
                let r = worst_ratio(&got[k], want, GPU_RTOL);
                assert!(
                    r <= 1.0,
                    "{} step {} tensor {k}: {:?} vs {:?} (ratio {r})",
                    case.name,
                    s + 1,
                    got[k],
                    want
                );
                if r > worst.0 {
                    worst = (r, format!("{} step {} tensor {k}", case.name, s + 1));
                }
            }
        }
        for (state, want) in &case.state {
            for (k, w) in want.iter().enumerate() {
                // Adafactor: each tensor keeps only its own kind of state
                // (torch records the others as empty).
                let kept = opt.tensor_state_names(&names[k]).unwrap();
                if w.is_empty() && !kept.contains(&state.as_str()) {
                    continue;
                }
                let got = opt.read_state(gpu, state, &names[k]).unwrap();
                let r = worst_ratio(&got, w, GPU_RTOL);
                assert!(
                    r <= 1.0,
                    "{} state {state} tensor {k}: ratio {r}",
                    case.name
                );
            }
        }
        assert_eq!(
            opt.state_names().len(),
            case.state.len(),
            "{}: same state buffers as PyTorch",
            case.name
        );
        // Schedule-Free: the host's running state (f64, as schedulefree's),
        // then the eval swap on the device.
        let ours = |g: usize| g + (!case.groups.is_empty()) as usize;
        for (g, want) in case.running.iter().enumerate() {
            for (name, &b) in want {
                let a = opt.group_config(ours(g)).unwrap().get(name).unwrap();
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs(),
                    "{} group {g} {name}",
                    case.name
                );
            }
        }
        if let Some(want) = &case.params_eval {
            opt.eval(gpu, &mut params).unwrap();
            let got = params.read_all(gpu).unwrap();
            for (k, w) in want.iter().enumerate() {
                let r = worst_ratio(&got[k], w, GPU_RTOL);
                assert!(r <= 1.0, "{} eval tensor {k}: ratio {r}", case.name);
            }
        }
    }
    println!("worst error / tolerance: {:.3} at {}", worst.0, worst.1);
}
