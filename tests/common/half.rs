//! Helpers of the tests of bf16 / f16 params and grads.

use wgpu_optim::{ParamDtype, ParamLayout, ParamSetOptions};

use super::{Rng, random_tensors as random};

pub const B16: ParamDtype = ParamDtype::Bf16;
pub const F16: ParamDtype = ParamDtype::F16;
pub const F32: ParamDtype = ParamDtype::F32;

pub fn options(param: ParamDtype, grad: ParamDtype, chunk: Option<u64>) -> ParamSetOptions {
    ParamSetOptions {
        param_dtype: param,
        grad_dtype: grad,
        chunk_elems: chunk,
    }
}

/// A layout of a matrix that straddles chunks of 1024, a vector and a
/// tiny tensor.
pub fn mixed_layout() -> ParamLayout {
    ParamLayout::new(&[("w", &[40, 50][..]), ("b", &[50][..]), ("t", &[3][..])]).unwrap()
}

/// Gradients exact in `dtype` (so the f32 run reads the same values).
pub fn grads_in(dtype: ParamDtype, rng: &mut Rng, layout: &ParamLayout) -> Vec<Vec<f32>> {
    random(rng, layout, 0.5)
        .into_iter()
        .map(|t| t.iter().map(|&x| dtype.round(x)).collect())
        .collect()
}
