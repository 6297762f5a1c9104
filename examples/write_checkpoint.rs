//! Writes a small checkpoint (Adam with AMSGrad, 3 steps) for
//! `tests/golden/check_checkpoint.py`, which opens it from Python; the
//! optional second argument stores the states as `f32` (the default),
//! `bf16` or `8bit`.
//!
//! `cargo run --example write_checkpoint -- out.safetensors [f32|bf16|8bit]`

use wgpu_optim::checkpoint::{self, TrainingState};
use wgpu_optim::optim::state::StateDtype;
use wgpu_optim::optim::{AdamConfig, OptimizerSpec};
use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: write_checkpoint OUT.safetensors [f32|bf16|8bit]")?;
    let dtype = StateDtype::parse(&std::env::args().nth(2).unwrap_or("f32".into()))?;
    let gpu = Gpu::new_default()?;
    let layout = ParamLayout::new(&[("fc1.weight", &[4, 3][..]), ("fc1.bias", &[4][..])])?;
    let mut params = ParamSet::new(&gpu, &layout)?;
    params.write(
        &gpu,
        "fc1.weight",
        &(0..12).map(|i| i as f32 / 10.0).collect::<Vec<_>>(),
    )?;
    let spec = OptimizerSpec::adam(AdamConfig {
        amsgrad: true,
        ..Default::default()
    })
    .state_dtype(dtype)
    .min_8bit_size(0);
    let mut opt = Optimizer::new(&gpu, &spec, &params)?;
    for _ in 0..3 {
        params.write_grad(&gpu, "fc1.weight", &[0.5; 12])?;
        params.write_grad(&gpu, "fc1.bias", &[-1.0; 4])?;
        opt.step(&gpu, &mut params)?;
    }
    checkpoint::save(
        out.as_ref(),
        &gpu,
        &params,
        &mut opt,
        &TrainingState {
            epoch: 1,
            ..Default::default()
        },
    )?;
    println!("wrote {out}");
    Ok(())
}
