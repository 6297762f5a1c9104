//! # wgpu-optim
//!
//! The training step of a model, after the backward pass, on any GPU through
//! [wgpu](https://wgpu.rs) (Vulkan, Metal, DX12, GL): fused optimizer kernels
//! written in WGSL that update every tensor of a model in one pass, with
//! PyTorch's equations, defaults and state names.
//!
//! ## Quick start
//! ```no_run
//! use wgpu_optim::{Gpu, ParamLayout, ParamSet, Optimizer};
//! use wgpu_optim::optim::{AdamWConfig, OptimizerSpec, ParamGroup};
//!
//! # fn main() -> wgpu_optim::Result<()> {
//! let gpu = Gpu::new_default()?;
//! let layout = ParamLayout::new(&[("w", &[256, 64][..]), ("b", &[64][..])])?;
//! let mut params = ParamSet::new(&gpu, &layout)?;
//! params.write(&gpu, "w", &vec![0.1; 256 * 64])?;
//! let spec = OptimizerSpec::adamw(AdamWConfig { lr: 3e-4, ..Default::default() })
//!     .group(ParamGroup::matching("b").weight_decay(0.0));
//! let mut opt = Optimizer::new(&gpu, &spec, &params)?;
//! // ... your backward pass writes the gradients into params.grad_buffers() ...
//! params.write_grad(&gpu, "w", &vec![0.01; 256 * 64])?;
//! opt.step(&gpu, &mut params)?;          // one submit, no readback
//! let w = params.read(&gpu, "w")?;       // read back when you need it
//! # Ok(()) }
//! ```
//!
//! ## GPU requirements
//! Any adapter wgpu supports with at least 8 storage buffers per shader stage,
//! 256 invocations per workgroup and a 12 KiB uniform binding: every Vulkan,
//! Metal and DX12 GPU, and GL / WebGPU defaults. On Linux without a GPU,
//! Mesa's lavapipe (`apt-get install mesa-vulkan-drivers`) runs everything on
//! the CPU. Parameter buffers are split into chunks of at most
//! `max_storage_buffer_binding_size` (128 MiB on lavapipe), so tensors of any
//! size work.
//!
//! ## Design
//! See `ARCHITECTURE.md`: one flat buffer per role (params, grads, each
//! optimizer state) cut in chunks, a block table that maps each workgroup to
//! a piece of one tensor and its param group, and one dispatch per chunk for
//! the whole model.

#[doc(hidden)]
pub mod bench;
pub mod checkpoint;
pub mod collective;
pub mod early_stopping;
pub mod error;
pub mod gpu;
pub mod grad;
pub mod layout;
pub mod optim;
pub mod params;
pub mod pool;
pub mod precision;
#[doc(hidden)]
pub mod rng;
pub mod schedule;
pub mod trainer;

pub use error::{Error, ErrorKind, Result};
pub use gpu::Gpu;
pub use layout::{ParamLayout, TensorPiece};
/// The f64 reference of tests and benches (not part of the public API).
#[doc(hidden)]
pub use optim::reference;
pub use optim::{Optimizer, OptimizerSpec};
pub use params::{ParamSet, ParamSetOptions};
pub use precision::{ParamDtype, ParamUpdate};
pub use trainer::Trainer;
