//! [`ParamDtype`]: how a [`ParamSet`](crate::ParamSet)'s params or grads
//! rest in device memory (f32, or bf16 / f16 two per `u32`), their host
//! encoding and decoding (the `half` crate, round to nearest even), and
//! [`ParamUpdate`]: how an optimizer writes its f32 result into bf16 or f16
//! params (round to nearest, f32 master weights, or stochastic rounding).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The storage format of a [`ParamSet`](crate::ParamSet)'s params or grads.
/// Arithmetic is always f32: the 16-bit formats only load (exactly) and store
/// (rounded).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum ParamDtype {
    /// 4 bytes per element.
    #[default]
    #[serde(rename = "f32")]
    F32,
    /// 2 bytes per element: the high half of an f32 (8 exponent bits, so
    /// f32's range; 8 significant bits).
    #[serde(rename = "bf16")]
    Bf16,
    /// 2 bytes per element: IEEE binary16 (11 significant bits, largest
    /// finite 65504: gradients need a loss scale).
    #[serde(rename = "f16")]
    F16,
}

impl ParamDtype {
    /// `f32`, `bf16` or `f16` (reports, checkpoints, the example's flags).
    pub fn as_str(self) -> &'static str {
        match self {
            ParamDtype::F32 => "f32",
            ParamDtype::Bf16 => "bf16",
            ParamDtype::F16 => "f16",
        }
    }
    /// Parses [`as_str`](Self::as_str)'s names; `field` names the setting in
    /// the error.
    pub fn parse(field: &str, s: &str) -> Result<ParamDtype> {
        match s {
            "f32" => Ok(ParamDtype::F32),
            "bf16" => Ok(ParamDtype::Bf16),
            "f16" => Ok(ParamDtype::F16),
            _ => Err(Error::invalid(
                field,
                format!("{s:?}"),
                "f32, bf16 or f16",
                format!("unknown dtype {s:?}"),
            )),
        }
    }
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            ParamDtype::F32 => 4,
            _ => 2,
        }
    }
    /// The safetensors dtype of this format.
    pub(crate) fn safetensors(self) -> safetensors::Dtype {
        match self {
            ParamDtype::F32 => safetensors::Dtype::F32,
            ParamDtype::Bf16 => safetensors::Dtype::BF16,
            ParamDtype::F16 => safetensors::Dtype::F16,
        }
    }
    /// `values` as this format's little-endian bytes, each rounded to the
    /// nearest (ties to even; overflow to infinity; a NaN stays NaN).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            ParamDtype::F32 => bytemuck::cast_slice(values).to_vec(),
            ParamDtype::Bf16 => values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
            ParamDtype::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }
    /// The f32 values of this format's bytes (exact).
    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            ParamDtype::F32 => bytemuck::pod_collect_to_vec(bytes),
            ParamDtype::Bf16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            ParamDtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }
    /// `x` rounded to the nearest value of this format (ties to even), as f32.
    pub fn round(self, x: f32) -> f32 {
        match self {
            ParamDtype::F32 => x,
            ParamDtype::Bf16 => half::bf16::from_f32(x).to_f32(),
            ParamDtype::F16 => half::f16::from_f32(x).to_f32(),
        }
    }
}

/// How an optimizer step writes its f32 result into the params of a param
/// group when the [`ParamSet`](crate::ParamSet) holds bf16 or f16 params
/// (`OptimizerSpec::param_update`, `ParamGroup::param_update`). With f32
/// params only [`RoundNearest`](Self::RoundNearest) applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ParamUpdate {
    /// The result rounded to the nearest bf16 / f16, ties to even (PyTorch's
    /// in-place update of bf16 params). Updates smaller than half a unit in
    /// the last place are lost.
    #[default]
    #[serde(rename = "nearest")]
    RoundNearest,
    /// An f32 copy of the params (the optimizer's state `master`) is updated
    /// and the params are written from it, rounded to nearest (Apex's
    /// `master_weights`): the f32 trajectory is bitwise the one of f32
    /// params fed the same gradients. 4 more bytes per param.
    #[serde(rename = "master")]
    MasterWeights,
    /// The result rounded up or down at random, with the probability that
    /// makes the rounding unbiased (torchao's `bf16_stochastic_round`): no
    /// master copy, and small updates survive on average. The random bits
    /// come from Philox4x32-10 keyed by the spec's rounding seed and counted
    /// by (tensor, element, step), so runs and replicas agree bitwise.
    #[serde(rename = "stochastic")]
    StochasticRounding,
}

impl ParamUpdate {
    /// `nearest`, `master` or `stochastic`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamUpdate::RoundNearest => "nearest",
            ParamUpdate::MasterWeights => "master",
            ParamUpdate::StochasticRounding => "stochastic",
        }
    }
    /// The 2-bit code the kernels read per group (`StepInfo.modes`).
    pub(crate) fn code(self) -> u32 {
        match self {
            ParamUpdate::RoundNearest => 0,
            ParamUpdate::MasterWeights => 1,
            ParamUpdate::StochasticRounding => 2,
        }
    }
}

/// What a kernel must know of the params and grads it binds: their dtypes
/// and whether some group keeps f32 master weights (bound after every other
/// binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct ParamStorage {
    pub(crate) param: ParamDtype,
    pub(crate) grad: ParamDtype,
    pub(crate) master: bool,
}

impl ParamStorage {
    /// A part of the pipeline cache's key.
    pub(crate) fn key(self) -> String {
        format!(
            "p{}/g{}{}",
            self.param.as_str(),
            self.grad.as_str(),
            if self.master { "/master" } else { "" }
        )
    }
}

/// WGSL of an element type's vec4 storage: the array element, the load and
/// the round-to-nearest store of `x`.
fn vec4_access(d: ParamDtype) -> (&'static str, &'static str, &'static str) {
    match d {
        ParamDtype::F32 => ("vec4<f32>", "{x}", "{x}"),
        ParamDtype::Bf16 => ("vec2<u32>", "bf16x4_unpack({x})", "bf16x4_pack({x})"),
        ParamDtype::F16 => ("vec2<u32>", "f16x4_unpack({x})", "f16x4_pack({x})"),
    }
}

/// The kernels' param and grad bindings (4 and 5) and accessors, generated
/// for `s`: `load_param(i)` / `store_param(i, v)` (`store` wraps a store in
/// the kernel's guard), `grad_vec(i)`, and `enter_group(g)`, which reads
/// group `g`'s [`ParamUpdate`] from `StepInfo.modes`. With 16-bit params a
/// store rounds to nearest, or stochastically (mode 2: Philox words of the
/// vec4's index in its tensor, set by `enter_block`), or (mode 1) writes the
/// f32 master at binding `master_binding` and the params from it; loads
/// read the master in mode 1.
pub(crate) fn params_wgsl(
    s: ParamStorage,
    master_binding: Option<u32>,
    store: &dyn Fn(String) -> String,
) -> String {
    let (pty, pload, pstore) = vec4_access(s.param);
    let (gty, gload, _) = vec4_access(s.grad);
    let at = |f: &str, x: &str| f.replace("{x}", x);
    let mut w = format!(
        "@group(0) @binding(4) var<storage, read_write> param: array<{pty}>;\n\
         @group(0) @binding(5) var<storage, read> grad: array<{gty}>;\n\
         fn grad_vec(i: u32) -> V {{ return {}; }}\n",
        at(gload, "grad[i]")
    );
    if s.param == ParamDtype::F32 {
        w += &format!(
            "fn enter_group(g: u32) {{}}\n\
             fn param_vec_base(blk: Block) {{}}\n\
             fn load_param(i: u32) -> V {{ return param[i]; }}\n\
             fn store_param(i: u32, v: V) {{ {} }}\n",
            store("param[i] = v;".into())
        );
        return w;
    }
    let master = match master_binding {
        Some(b) => {
            w += &format!(
                "@group(0) @binding({b}) var<storage, read_write> master: array<vec4<f32>>;\n"
            );
            (
                "if param_mode == 1u { return master[i]; }",
                "if param_mode == 1u { master[i] = v; }",
            )
        }
        None => ("", ""),
    };
    let sr = match s.param {
        ParamDtype::Bf16 => "bf16_bits_stochastic",
        _ => "f16_bits_stochastic",
    };
    w += &format!(
        "var<private> param_mode: u32;\n\
         var<private> param_tensor: u32;\n\
         var<private> param_base: u32;\n\
         fn enter_group(g: u32) {{ param_mode = (step.modes[g / 64u][(g / 16u) % 4u] >> (2u * (g % 16u))) & 3u; }}\n\
         // The vec4 index in its tensor of the chunk's vec4 i is i + param_base.\n\
         fn param_vec_base(blk: Block) {{ param_tensor = blk.tensor; param_base = blk.local / 4u - blk.start / 4u; }}\n\
         fn load_param(i: u32) -> V {{ {} return {}; }}\n\
         fn store_param(i: u32, v: V) {{ {} }}\n",
        master.0,
        at(pload, "param[i]"),
        store(format!(
            "if param_mode == 2u {{\n\
             \x20       let r = round_words(step.seed, param_tensor, i + param_base, step.t, step.t_hi);\n\
             \x20       param[i] = vec2<u32>({sr}(v.x, r.x) | ({sr}(v.y, r.y) << 16u), {sr}(v.z, r.z) | ({sr}(v.w, r.w) << 16u));\n\
             \x20   }} else {{\n\
             \x20       {}\n\
             \x20       param[i] = {};\n\
             \x20   }}",
            master.1,
            at(pstore, "v")
        ))
    );
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_and_round_to_nearest_even() {
        for d in [ParamDtype::F32, ParamDtype::Bf16, ParamDtype::F16] {
            let v = [1.0f32, -2.5, 0.0, 65280.0];
            assert_eq!(d.decode(&d.encode(&v)), v, "{d:?}");
            assert_eq!(d.encode(&v).len() as u64, 4 * d.bytes());
        }
        // 1 + 2^-11 is a tie between 1 and 1 + 2^-10 in f16: even (1).
        assert_eq!(ParamDtype::F16.round(1.0 + 1.0 / 2048.0), 1.0);
        assert_eq!(ParamDtype::F16.round(65520.0), f32::INFINITY);
        assert_eq!(ParamDtype::Bf16.round(1.0 + 3.0 / 256.0), 1.0 + 2.0 / 128.0);
    }
}
