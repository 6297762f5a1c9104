//! Runs one optimizer on the default adapter and prints what it did: fits a
//! 2-tensor linear model y = w x + b to a known target by least squares, with
//! the gradients computed on the host and the step on the GPU.
//!
//! `cargo run --release --example quickstart [sgd|adam|adamw|adagrad|adadelta|rmsprop]`

use wgpu_optim::optim::*;
use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "adam".into());
    let spec =
        match which.as_str() {
            "sgd" => OptimizerSpec::sgd(SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                ..Default::default()
            }),
            "adam" => OptimizerSpec::adam(AdamConfig {
                lr: 0.05,
                ..Default::default()
            }),
            "adamw" => OptimizerSpec::adamw(AdamWConfig {
                lr: 0.05,
                ..Default::default()
            }),
            "adagrad" => OptimizerSpec::adagrad(AdagradConfig {
                lr: 0.5,
                ..Default::default()
            }),
            "adadelta" => OptimizerSpec::adadelta(AdadeltaConfig {
                lr: 10.0,
                ..Default::default()
            }),
            "rmsprop" => OptimizerSpec::rmsprop(RmsPropConfig {
                lr: 0.01,
                ..Default::default()
            }),
            other => return Err(format!(
                "unknown optimizer {other:?}; use sgd, adam, adamw, adagrad, adadelta or rmsprop"
            )
            .into()),
        };
    let gpu = Gpu::new_default()?;
    let info = gpu.info();
    println!(
        "adapter: {} ({:?}, {:?})",
        info.name, info.backend, info.device_type
    );

    // Target: w* = [1, -2, 3, ...], b* = 0.5; data x_j = sin(j), cos(j), ...
    let (d, n) = (8usize, 64usize);
    let w_true: Vec<f32> = (0..d)
        .map(|i| {
            if i % 2 == 0 {
                i as f32 + 1.0
            } else {
                -(i as f32 + 1.0)
            }
        })
        .collect();
    let xs: Vec<Vec<f32>> = (0..n)
        .map(|j| (0..d).map(|i| ((j * d + i) as f32 * 0.37).sin()).collect())
        .collect();
    let ys: Vec<f32> = xs
        .iter()
        .map(|x| x.iter().zip(&w_true).map(|(a, b)| a * b).sum::<f32>() + 0.5)
        .collect();

    let layout = ParamLayout::new(&[("w", &[d][..]), ("b", &[1][..])])?;
    let mut params = ParamSet::new(&gpu, &layout)?;
    let mut opt = Optimizer::new(&gpu, &spec, &params)?;
    println!(
        "optimizer: {} with state {:?}",
        spec.algorithm().name(),
        opt.state_names()
    );
    for step in 0..=200 {
        let w = params.read(&gpu, "w")?;
        let b = params.read(&gpu, "b")?[0];
        let (mut gw, mut gb, mut loss) = (vec![0.0f32; d], 0.0f32, 0.0f32);
        for (x, y) in xs.iter().zip(&ys) {
            let r = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + b - y;
            loss += r * r / n as f32;
            for i in 0..d {
                gw[i] += 2.0 * r * x[i] / n as f32;
            }
            gb += 2.0 * r / n as f32;
        }
        if step % 50 == 0 {
            println!("step {step:>3}: loss {loss:.6}");
        }
        params.write_grad(&gpu, "w", &gw)?;
        params.write_grad(&gpu, "b", &[gb])?;
        opt.step(&gpu, &mut params)?;
    }
    println!(
        "w = {:?}\nb = {:?}",
        params.read(&gpu, "w")?,
        params.read(&gpu, "b")?
    );
    Ok(())
}
