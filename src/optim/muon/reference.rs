//! The f64 reference of Muon, line by line after torch's
//! `_single_tensor_muon` and `_zeropower_via_newtonschulz`
//! (torch/optim/_muon.py), with the iteration in f64 instead of bf16.

use crate::optim::MuonConfig;
use crate::optim::TensorReference;
use crate::optim::reference::penalized;

/// `torch.lerp` on CPU: `w < 0.5 ? a + w (b - a) : b - (b - a) (1 - w)`.
fn lerp(a: f64, b: f64, w: f64) -> f64 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

/// `C = A B` for row-major `A` (`r x k`) and `B` (`k x c`).
fn matmul(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[i * c + j] = (0..k).map(|q| a[i * k + q] * b[q * c + j]).sum();
        }
    }
    out
}

fn transpose(a: &[f64], r: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = a[i * c + j];
        }
    }
    out
}

/// torch's `_zeropower_via_newtonschulz` of a `rows x cols` matrix, in f64.
pub(crate) fn newton_schulz(
    u: &[f64],
    (rows, cols): (usize, usize),
    (a, b, c): (f64, f64, f64),
    steps: u32,
    eps: f64,
) -> Vec<f64> {
    let tall = rows > cols;
    let (m, n) = if tall { (cols, rows) } else { (rows, cols) };
    let mut x = if tall {
        transpose(u, rows, cols)
    } else {
        u.to_vec()
    };
    let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    let d = norm.max(eps);
    for v in &mut x {
        *v /= d;
    }
    for _ in 0..steps {
        let gram = matmul(&x, &transpose(&x, m, n), m, n, m);
        let gg = matmul(&gram, &gram, m, m, m);
        let h: Vec<f64> = gram.iter().zip(&gg).map(|(g, q)| b * g + c * q).collect();
        let hx = matmul(&h, &x, m, m, n);
        x = x.iter().zip(&hx).map(|(x, q)| a * x + q).collect();
    }
    if tall { transpose(&x, m, n) } else { x }
}

/// `st` = [momentum_buffer].
impl TensorReference for MuonConfig {
    fn step_tensor(&self, _t: f64, shape: &[usize], p: &mut [f64], g: &[f64], st: &mut [Vec<f64>]) {
        let buf = &mut st[0];
        let mut u = vec![0.0; p.len()];
        for i in 0..p.len() {
            let mut q = p[i];
            let g = penalized(&mut q, g[i], self.maximize, 0.0, None, self.l1);
            buf[i] = lerp(buf[i], g, 1.0 - self.momentum);
            u[i] = if self.nesterov {
                lerp(g, buf[i], self.momentum)
            } else {
                buf[i]
            };
        }
        let (rows, cols) = (shape[0], shape[1]);
        let o = newton_schulz(
            &u,
            (rows, cols),
            self.ns_coefficients,
            self.ns_steps,
            self.eps,
        );
        let lr = self.lr * self.adjust_lr_fn.ratio(rows as u64, cols as u64);
        for (p, o) in p.iter_mut().zip(o) {
            *p *= 1.0 - self.lr * self.weight_decay;
            *p -= lr * o;
        }
    }
}
