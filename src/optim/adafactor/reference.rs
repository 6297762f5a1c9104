//! The f64 reference of Adafactor, line by line after torch's
//! `_single_tensor_adafactor` (torch/optim/_adafactor.py).

use crate::optim::AdafactorConfig;
use crate::optim::TensorReference;
use crate::optim::reference::sign;

/// `torch.lerp` on CPU: `w < 0.5 ? a + w (b - a) : b - (b - a) (1 - w)`.
fn lerp(a: f64, b: f64, w: f64) -> f64 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

fn norm(x: impl Iterator<Item = f64>) -> f64 {
    x.map(|v| v * v).sum::<f64>().sqrt()
}

impl TensorReference for AdafactorConfig {
    /// `st`: `[row_var, col_var]` for two or more dimensions, `[variance]`
    /// otherwise (`factors::states_of`).
    fn step_tensor(&self, t: f64, shape: &[usize], p: &mut [f64], g: &[f64], st: &mut [Vec<f64>]) {
        let n = p.len();
        if n == 0 {
            // torch divides by numel ** 0.5; the crate leaves empty tensors alone.
            return;
        }
        // The gradient with maximize and wgpu-optim's l1 (sign of p before the decay).
        let g: Vec<f64> = g
            .iter()
            .zip(p.iter())
            .map(|(&g, &p)| {
                let g = if self.maximize { -g } else { g };
                g + self.l1 * sign(p)
            })
            .collect();
        let w = t.powf(self.beta2_decay);
        let rho = self.lr.min(1.0 / t.sqrt());
        let alpha = self.eps2.max(norm(p.iter().copied()) / (n as f64).sqrt()) * rho;
        if self.weight_decay != 0.0 {
            for x in p.iter_mut() {
                *x *= 1.0 - self.lr * self.weight_decay;
            }
        }
        let v: Vec<f64> = if shape.len() >= 2 {
            let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
            let batch = n / (r * c);
            let (rows, cols) = st.split_at_mut(1);
            let (row_var, col_var) = (&mut rows[0], &mut cols[0]);
            let mut v = vec![0.0; n];
            for b in 0..batch {
                let slice = &g[b * r * c..(b + 1) * r * c];
                for i in 0..r {
                    let mean = norm(slice[i * c..(i + 1) * c].iter().copied()).powi(2) / c as f64;
                    row_var[b * r + i] = lerp(row_var[b * r + i], mean, w);
                }
                for j in 0..c {
                    let mean = norm((0..r).map(|i| slice[i * c + j])).powi(2) / r as f64;
                    col_var[b * c + j] = lerp(col_var[b * c + j], mean, w);
                }
                let row_mean = row_var[b * r..(b + 1) * r].iter().sum::<f64>() / r as f64;
                let row_mean = row_mean.max(self.eps1);
                for i in 0..r {
                    for j in 0..c {
                        v[b * r * c + i * c + j] =
                            row_var[b * r + i] * col_var[b * c + j] / row_mean;
                    }
                }
            }
            v
        } else {
            let variance = &mut st[0];
            for (x, &gi) in variance.iter_mut().zip(&g) {
                *x = lerp(*x, gi * gi, w);
            }
            variance.clone()
        };
        let eps1_sq = self.eps1 * self.eps1;
        let u: Vec<f64> = v
            .iter()
            .zip(&g)
            .map(|(&v, &g)| g / v.max(eps1_sq).sqrt())
            .collect();
        let denom = (norm(u.iter().copied()) / ((n as f64).sqrt() * self.d)).max(1.0);
        for (x, u) in p.iter_mut().zip(u) {
            *x -= alpha / denom * u;
        }
    }
}
