//! Where optimizer states live and in which format: [`StateDtype`] (f32,
//! bf16, or bitsandbytes' blockwise 8 bits, chosen per param group), the
//! state placement (the states of each format packed in their own buffers,
//! per chunk), the host-side reads and writes, and the WGSL accessors each
//! kernel is assembled with (`load_<state>(i)` / `store_<state>(i, v)`,
//! generated here for the format of its tensors).
//!
//! **Formats per tensor.** A tensor's states take its group's
//! [`StateDtype`]; with [`StateDtype::Blockwise8`] a tensor of fewer than
//! `min_8bit_size` elements (4096 by default, bitsandbytes' threshold) keeps
//! f32 states, as bitsandbytes does: its memory is small and its updates
//! (norms, biases) suffer most from quantization.
//!
//! **Placement.** For each chunk of the params and each format, one buffer
//! per state holds the pieces of that chunk's tensors of that format, in
//! layout order, each starting on a multiple of 64 elements (256 for 8 bits,
//! so each quantization block of 256 elements starts at a piece's start). A
//! work block's `state` field (`Block`, `gpu/common.wgsl`) is its first
//! element in that buffer. The 8-bit buffers of a chunk share one `absmax`
//! buffer: one section of `len / 256` f32 per state, in state order.
//! With f32 states only, every state offset equals the param offset.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::layout::{Placement, TENSOR_ALIGN_ELEMS};
use crate::params::ROLE_USAGE;
use crate::precision::{self, ParamDtype, ParamStorage, QUANT_BLOCK};

/// How an optimizer state rests in device memory (all arithmetic is f32).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum StateDtype {
    /// 4 bytes per element.
    #[default]
    #[serde(rename = "f32")]
    F32,
    /// 2 bytes per element: the f32 result rounded to the nearest bf16
    /// (ties to even) at every store.
    #[serde(rename = "bf16")]
    Bf16,
    /// About 1 byte per element: bitsandbytes' blockwise dynamic
    /// quantization (blocks of 256 elements, an f32 absmax each, the signed
    /// or unsigned dynamic map; see [`crate::precision`]).
    #[serde(rename = "8bit")]
    Blockwise8,
}

impl StateDtype {
    /// The name used in reports, checkpoints and the example's flags:
    /// `f32`, `bf16`, `8bit`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateDtype::F32 => "f32",
            StateDtype::Bf16 => "bf16",
            StateDtype::Blockwise8 => "8bit",
        }
    }
    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Result<StateDtype> {
        match s {
            "f32" => Ok(StateDtype::F32),
            "bf16" => Ok(StateDtype::Bf16),
            "8bit" => Ok(StateDtype::Blockwise8),
            _ => Err(Error::invalid(
                "state_dtype",
                format!("{s:?}"),
                "f32, bf16 or 8bit",
                format!("unknown state dtype {s:?}"),
            )),
        }
    }
    /// Device bytes per element, the 8-bit absmax not counted.
    pub fn bytes(self) -> f64 {
        match self {
            StateDtype::F32 => 4.0,
            StateDtype::Bf16 => 2.0,
            StateDtype::Blockwise8 => 1.0,
        }
    }
    fn align(self) -> u64 {
        match self {
            StateDtype::Blockwise8 => QUANT_BLOCK as u64,
            _ => TENSOR_ALIGN_ELEMS,
        }
    }
}

/// bitsandbytes' `min_8bit_size`: tensors with fewer elements keep f32
/// states in an 8-bit group.
pub const MIN_8BIT_SIZE: u64 = 4096;

/// The state formats an optimizer (configuration) may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateFormats {
    /// f32 only.
    F32,
    /// f32 or bf16 (no 8 bits: the kernel has no room for their workgroup
    /// reduction or binding, or the states are not moment-like).
    Bf16,
    /// f32, bf16 or 8 bits, with each state slot's dynamic map.
    All(&'static [QMap]),
}

impl StateFormats {
    /// Whether `d` is one of them.
    pub(crate) fn allows(self, d: StateDtype) -> bool {
        match self {
            StateFormats::F32 => d == StateDtype::F32,
            StateFormats::Bf16 => d != StateDtype::Blockwise8,
            StateFormats::All(_) => true,
        }
    }
    /// The formats, in order.
    pub(crate) fn list(self) -> Vec<StateDtype> {
        [StateDtype::F32, StateDtype::Bf16, StateDtype::Blockwise8]
            .into_iter()
            .filter(|&d| self.allows(d))
            .collect()
    }
}

/// Which dynamic map an 8-bit state uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QMap {
    /// Values of either sign (bitsandbytes' `dynamic`).
    Signed,
    /// Non-negative values (bitsandbytes' `udynamic`).
    Unsigned,
}

impl QMap {
    fn index(self) -> u32 {
        match self {
            QMap::Signed => 0,
            QMap::Unsigned => 1,
        }
    }
    pub(crate) fn map(self) -> [f32; 256] {
        precision::dynamic_map(self == QMap::Signed)
    }
}

/// The states' formats and places: each tensor's format, each tensor
/// piece's first element in its state buffer, each (chunk, format) buffer's
/// length in elements.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatePlacement {
    pub(crate) dtypes: Vec<StateDtype>,
    pub(crate) offsets: Vec<Vec<u64>>,
    pub(crate) lens: BTreeMap<(usize, StateDtype), u64>,
    /// Whether each tensor keeps these states: false for the tensors of
    /// param groups that run another algorithm (`ParamGroup::algorithm`),
    /// whose states are another part's.
    pub(crate) included: Vec<bool>,
}

impl StatePlacement {
    /// The formats of `group_dtypes` per tensor (`assignment`), the small
    /// tensors of 8-bit groups in f32, placed per chunk and format.
    #[cfg(test)]
    pub(crate) fn new(
        placement: &Placement,
        numels: &[u64],
        assignment: &[usize],
        group_dtypes: &[StateDtype],
        min_8bit_size: u64,
    ) -> StatePlacement {
        let all = vec![true; numels.len()];
        Self::of_tensors(
            placement,
            numels,
            assignment,
            group_dtypes,
            min_8bit_size,
            &all,
        )
    }

    /// Like [`new`](Self::new), for the tensors marked in `included` only
    /// (the others take no state space).
    pub(crate) fn of_tensors(
        placement: &Placement,
        numels: &[u64],
        assignment: &[usize],
        group_dtypes: &[StateDtype],
        min_8bit_size: u64,
        included: &[bool],
    ) -> StatePlacement {
        let dtypes: Vec<StateDtype> = assignment
            .iter()
            .zip(numels)
            .map(|(&g, &n)| match group_dtypes[g] {
                StateDtype::Blockwise8 if n < min_8bit_size => StateDtype::F32,
                d => d,
            })
            .collect();
        let mut offsets: Vec<Vec<u64>> = (0..numels.len())
            .map(|k| vec![0; placement.pieces(k).len()])
            .collect();
        let mut lens = BTreeMap::new();
        for c in 0..placement.chunk_lens().len() {
            let mut at: BTreeMap<StateDtype, u64> = BTreeMap::new();
            for (k, &d) in dtypes.iter().enumerate() {
                for (j, p) in placement.pieces(k).iter().enumerate() {
                    if p.chunk != c || !included[k] {
                        continue;
                    }
                    let a = at.entry(d).or_insert(0);
                    let start = a.next_multiple_of(d.align());
                    offsets[k][j] = start;
                    *a = start + p.len;
                }
            }
            for (d, end) in at {
                lens.insert((c, d), end.next_multiple_of(d.align()));
            }
        }
        StatePlacement {
            dtypes,
            offsets,
            lens,
            included: included.to_vec(),
        }
    }

    /// The formats in use.
    pub(crate) fn formats(&self) -> Vec<StateDtype> {
        let mut v: Vec<StateDtype> = self.lens.keys().map(|k| k.1).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// One state's buffers, per (chunk, format).
#[derive(Debug)]
pub(crate) struct StateRole {
    pub(crate) name: &'static str,
    pub(crate) map: QMap,
    /// This state's section in the 8-bit absmax buffers.
    pub(crate) section: u32,
    pub(crate) buffers: BTreeMap<(usize, StateDtype), wgpu::Buffer>,
}

/// Every state of an optimizer, and the 8-bit absmax buffers (per chunk).
#[derive(Debug)]
pub(crate) struct States {
    pub(crate) placement: StatePlacement,
    pub(crate) roles: Vec<StateRole>,
    pub(crate) absmax: BTreeMap<usize, wgpu::Buffer>,
}

/// A buffer size for `elems` elements of `d`: whole words, 16 bytes at least.
fn bytes_of(d: StateDtype, elems: u64) -> u64 {
    (elems * d.bytes() as u64).next_multiple_of(4).max(16)
}

/// A state's values of one tensor as they rest on the device.
#[derive(Debug, Clone, PartialEq)]
pub enum StateData {
    /// f32 values.
    F32(Vec<f32>),
    /// bf16 bits.
    Bf16(Vec<u16>),
    /// 8-bit codes and one absmax per block of 256 elements of each tensor
    /// piece (one piece unless the tensor straddles a chunk boundary).
    Blockwise8 {
        /// One code per element.
        codes: Vec<u8>,
        /// One f32 per block.
        absmax: Vec<f32>,
    },
}

impl StateData {
    /// The format.
    pub fn dtype(&self) -> StateDtype {
        match self {
            StateData::F32(_) => StateDtype::F32,
            StateData::Bf16(_) => StateDtype::Bf16,
            StateData::Blockwise8 { .. } => StateDtype::Blockwise8,
        }
    }
}

impl States {
    /// Allocates every state in `active` (name, initial value, map) for
    /// `placement`; each tensor starts at its own group's initial value.
    pub(crate) fn new(
        gpu: &Gpu,
        label: &str,
        params: &Placement,
        placement: StatePlacement,
        active: &[(&'static str, QMap)],
        init: impl Fn(usize, usize) -> f32,
    ) -> Result<States> {
        let n_quant = active.len() as u64;
        let mut roles = Vec::new();
        for (s, &(name, map)) in active.iter().enumerate() {
            let buffers = placement
                .lens
                .iter()
                .map(|(&(c, d), &len)| {
                    let label = format!("{label}/{name}/chunk{c}/{}", d.as_str());
                    (
                        (c, d),
                        gpu.create_buffer(&label, bytes_of(d, len), ROLE_USAGE),
                    )
                })
                .collect();
            roles.push(StateRole {
                name,
                map,
                section: s as u32,
                buffers,
            });
        }
        let absmax = placement
            .lens
            .iter()
            .filter(|((_, d), _)| *d == StateDtype::Blockwise8)
            .map(|(&(c, _), &len)| {
                let n = len / QUANT_BLOCK as u64 * n_quant;
                let label = format!("{label}/absmax/chunk{c}");
                (c, gpu.create_buffer(&label, (n * 4).max(16), ROLE_USAGE))
            })
            .collect();
        let states = States {
            placement,
            roles,
            absmax,
        };
        for (s, role) in states.roles.iter().enumerate() {
            for k in 0..states.placement.dtypes.len() {
                if !states.placement.included[k] {
                    continue;
                }
                let v = init(s, k);
                if v != 0.0 {
                    let n: u64 = params.pieces(k).iter().map(|p| p.len).sum();
                    let data = vec![v; n as usize];
                    states.write(gpu, params, role.name, (k, "(initial value)"), &data)?;
                }
            }
        }
        Ok(states)
    }

    /// Chunk `c`'s absmax buffer bound at exactly its sections' size (the
    /// buffer may be larger, 16 bytes at least): the kernels find each
    /// state's section from `arrayLength(&absmax)`.
    pub(crate) fn absmax_binding(&self, c: usize) -> wgpu::BindingResource<'_> {
        let len = self.placement.lens[&(c, StateDtype::Blockwise8)];
        let n = len / QUANT_BLOCK as u64 * self.roles.len() as u64;
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.absmax[&c],
            offset: 0,
            size: std::num::NonZeroU64::new(n * 4),
        })
    }

    pub(crate) fn role(&self, name: &str) -> Option<&StateRole> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Writes f32 values of state `name` of tensor `k` (called `tensor` in
    /// messages), encoded in the tensor's format (8 bits: quantized per
    /// block of each piece).
    pub(crate) fn write(
        &self,
        gpu: &Gpu,
        params: &Placement,
        name: &str,
        (k, tensor): (usize, &str),
        data: &[f32],
    ) -> Result<()> {
        let d = self.placement.dtypes[k];
        let encoded = match d {
            StateDtype::F32 => StateData::F32(data.to_vec()),
            StateDtype::Bf16 => {
                StateData::Bf16(data.iter().map(|&x| precision::bf16_bits(x)).collect())
            }
            StateDtype::Blockwise8 => {
                let map = self.role(name).expect("a kept state").map.map();
                let (mut codes, mut absmax) = (Vec::new(), Vec::new());
                for p in params.pieces(k) {
                    let piece = &data[p.tensor_offset as usize..(p.tensor_offset + p.len) as usize];
                    for block in piece.chunks(QUANT_BLOCK) {
                        let (c, a) = precision::quantize_block(block, &map);
                        codes.extend(c);
                        absmax.push(a);
                    }
                }
                StateData::Blockwise8 { codes, absmax }
            }
        };
        self.write_raw(gpu, params, name, (k, tensor), &encoded)
    }

    /// Writes state `name` of tensor `k` (called `tensor` in messages) as
    /// stored (`data` in the tensor's format, lengths checked first).
    pub(crate) fn write_raw(
        &self,
        gpu: &Gpu,
        params: &Placement,
        name: &str,
        (k, tensor): (usize, &str),
        data: &StateData,
    ) -> Result<()> {
        let role = self.role(name).expect("a kept state");
        let d = self.placement.dtypes[k];
        let numel: u64 = params.pieces(k).iter().map(|p| p.len).sum();
        let blocks: u64 = params
            .pieces(k)
            .iter()
            .map(|p| p.len.div_ceil(QUANT_BLOCK as u64))
            .sum();
        let (len, extra) = match data {
            StateData::F32(v) => (v.len() as u64, 0),
            StateData::Bf16(v) => (v.len() as u64, 0),
            StateData::Blockwise8 { codes, absmax } => (codes.len() as u64, absmax.len() as u64),
        };
        if data.dtype() != d || len != numel || (d == StateDtype::Blockwise8 && extra != blocks) {
            return Err(Error::mismatch(format!(
                "state `{name}` of tensor `{tensor}` is stored as {} ({numel} elements{}), but {} \
                 data of {len} elements{} was given",
                d.as_str(),
                if d == StateDtype::Blockwise8 {
                    format!(", {blocks} absmax blocks")
                } else {
                    String::new()
                },
                data.dtype().as_str(),
                if extra > 0 {
                    format!(", {extra} absmax blocks")
                } else {
                    String::new()
                },
            )));
        }
        let mut block_at = 0usize;
        for (j, p) in params.pieces(k).iter().enumerate() {
            let off = self.placement.offsets[k][j];
            let buf = &role.buffers[&(p.chunk, d)];
            let (a, b) = (p.tensor_offset as usize, (p.tensor_offset + p.len) as usize);
            let mut bytes: Vec<u8> = match data {
                StateData::F32(v) => bytemuck::cast_slice(&v[a..b]).to_vec(),
                StateData::Bf16(v) => bytemuck::cast_slice(&v[a..b]).to_vec(),
                StateData::Blockwise8 { codes, .. } => codes[a..b].to_vec(),
            };
            // Whole words: the rest of the last one is this piece's padding,
            // which holds zeros (for 8 bits the code of 0, not code 0).
            let zero = match d {
                StateDtype::Blockwise8 => precision::quantize_value(0.0, &role.map.map()),
                _ => 0,
            };
            bytes.resize(bytes.len().next_multiple_of(4), zero);
            gpu.queue()
                .write_buffer(buf, off * d.bytes() as u64, &bytes);
            if let StateData::Blockwise8 { absmax, .. } = data {
                let n = p.len.div_ceil(QUANT_BLOCK as u64) as usize;
                let section = self.placement.lens[&(p.chunk, d)] / QUANT_BLOCK as u64;
                let at = (role.section as u64 * section + off / QUANT_BLOCK as u64) * 4;
                gpu.queue().write_buffer(
                    &self.absmax[&p.chunk],
                    at,
                    bytemuck::cast_slice(&absmax[block_at..block_at + n]),
                );
                block_at += n;
            }
        }
        Ok(())
    }

    /// Reads state `name` of tensors `which` as stored.
    pub(crate) fn read_raw(
        &self,
        gpu: &Gpu,
        params: &Placement,
        name: &str,
        which: &[usize],
    ) -> Result<Vec<StateData>> {
        let role = self.role(name).expect("a kept state");
        let mut ranges = Vec::new();
        for &k in which {
            let d = self.placement.dtypes[k];
            for (j, p) in params.pieces(k).iter().enumerate() {
                let off = self.placement.offsets[k][j];
                let size = ((p.len as f64 * d.bytes()) as u64).next_multiple_of(4);
                ranges.push((&role.buffers[&(p.chunk, d)], off * d.bytes() as u64, size));
                if d == StateDtype::Blockwise8 {
                    let n = p.len.div_ceil(QUANT_BLOCK as u64);
                    let section = self.placement.lens[&(p.chunk, d)] / QUANT_BLOCK as u64;
                    let at = (role.section as u64 * section + off / QUANT_BLOCK as u64) * 4;
                    ranges.push((&self.absmax[&p.chunk], at, n * 4));
                }
            }
        }
        let bytes = gpu.read_ranges("read optimizer state", &ranges)?;
        let mut at = 0usize;
        let mut take = |n: usize| {
            let s = &bytes[at..at + n];
            at += n;
            s
        };
        let mut out = Vec::new();
        for &k in which {
            let d = self.placement.dtypes[k];
            let mut f = Vec::new();
            let mut h = Vec::new();
            let (mut codes, mut absmax) = (Vec::new(), Vec::new());
            for p in params.pieces(k) {
                let len = p.len as usize;
                let size = ((len as f64 * d.bytes()) as usize).next_multiple_of(4);
                let s = take(size);
                match d {
                    StateDtype::F32 => f.extend(bytemuck::pod_collect_to_vec::<u8, f32>(s)),
                    StateDtype::Bf16 => {
                        h.extend(&bytemuck::pod_collect_to_vec::<u8, u16>(s)[..len])
                    }
                    StateDtype::Blockwise8 => {
                        codes.extend(&s[..len]);
                        let n = len.div_ceil(QUANT_BLOCK);
                        absmax.extend(bytemuck::pod_collect_to_vec::<u8, f32>(take(n * 4)));
                    }
                }
            }
            out.push(match d {
                StateDtype::F32 => StateData::F32(f),
                StateDtype::Bf16 => StateData::Bf16(h),
                StateDtype::Blockwise8 => StateData::Blockwise8 { codes, absmax },
            });
        }
        Ok(out)
    }

    /// Reads state `name` of tensor `k` as f32 values (decoded).
    pub(crate) fn read(
        &self,
        gpu: &Gpu,
        params: &Placement,
        name: &str,
        k: usize,
    ) -> Result<Vec<f32>> {
        let map = self.role(name).expect("a kept state").map.map();
        let raw = self.read_raw(gpu, params, name, &[k])?.remove(0);
        Ok(decode(
            &raw,
            &map,
            params.pieces(k).iter().map(|p| p.len as usize),
        ))
    }
}

/// The f32 values of stored data; `pieces` are the lengths of the tensor's
/// pieces (8-bit blocks restart at each).
pub(crate) fn decode(
    data: &StateData,
    map: &[f32; 256],
    pieces: impl Iterator<Item = usize>,
) -> Vec<f32> {
    match data {
        StateData::F32(v) => v.clone(),
        StateData::Bf16(v) => v.iter().map(|&b| precision::bf16_value(b)).collect(),
        StateData::Blockwise8 { codes, absmax } => {
            let mut out = Vec::with_capacity(codes.len());
            let (mut at, mut block) = (0usize, 0usize);
            for len in pieces {
                for (i, &c) in codes[at..at + len].iter().enumerate() {
                    out.push(precision::dequantize(
                        c,
                        absmax[block + i / QUANT_BLOCK],
                        map,
                    ));
                }
                at += len;
                block += len.div_ceil(QUANT_BLOCK);
            }
            out
        }
    }
}

/// The WGSL of a kernel's roles for tensors whose states are all `dtype`:
/// `param` and `grad` (bindings 4 and 5) in the dtypes of `storage` with
/// `load_param` / `store_param` / `grad_vec` (`precision::params_wgsl`; the
/// f32 master at `master_binding`), each state slot
/// from binding `first` with `load_<name>` / `store_<name>` (`active` slots
/// in `dtype`, the others 1-vec4 f32 dummies), and for 8-bit storage the
/// `absmax` (next binding) and `qmaps` (the one after) bindings, with
/// `q8_begin` / `q8_flush` (the 8-bit accessors read and write private
/// copies that the entry point decodes first and stores last, in one
/// reduction; see `precision/blockwise8.wgsl`). In 8-bit kernels the other
/// stores come only from invocations inside the block (their entry point
/// runs every invocation through the update).
pub(crate) fn roles_wgsl(
    first: u32,
    slots: &[&str],
    active: &[(&str, QMap)],
    dtype: StateDtype,
    (storage, master_binding): (ParamStorage, Option<u32>),
) -> String {
    let quant = dtype == StateDtype::Blockwise8;
    let guard = |s: String| {
        if quant {
            format!("if q_active {{ {s} }}")
        } else {
            s
        }
    };
    let mut w = String::from("// Generated by optim/state/mod.rs (roles_wgsl).\n");
    w += &precision::params_wgsl(storage, master_binding, &guard);
    w += "var<private> state_shift: u32;\n";
    w += "fn enter_block(blk: Block) {\n    \
          state_shift = select(blk.state / 4u - blk.start / 4u, 0u, STATE_AT_START);\n    \
          enter_group(blk.group);\n    param_vec_base(blk);\n}\n";
    let n_quant = if quant { active.len() } else { 0 };
    assert!(
        n_quant <= 4,
        "one vec4 reduction serves at most four 8-bit states"
    );
    let mut begin = String::new();
    let mut flush = String::new();
    let mut lane_max = vec!["0.0".to_string(); 4];
    for (s, name) in slots.iter().enumerate() {
        let b = first + s as u32;
        let on = active.iter().position(|a| a.0 == *name);
        let d = if on.is_some() { dtype } else { StateDtype::F32 };
        match d {
            StateDtype::F32 => {
                w += &format!(
                    "@group(0) @binding({b}) var<storage, read_write> {name}: array<vec4<f32>>;\n\
                     fn load_{name}(i: u32) -> V {{ return {name}[i + state_shift]; }}\n\
                     fn store_{name}(i: u32, v: V) {{ {} }}\n",
                    guard(format!("{name}[i + state_shift] = v;"))
                )
            }
            StateDtype::Bf16 => {
                w += &format!(
                    "@group(0) @binding({b}) var<storage, read_write> {name}: array<vec2<u32>>;\n\
                     fn load_{name}(i: u32) -> V {{ return bf16x4_unpack({name}[i + state_shift]); }}\n\
                     fn store_{name}(i: u32, v: V) {{ {} }}\n",
                    guard(format!("{name}[i + state_shift] = bf16x4_pack(v);"))
                )
            }
            StateDtype::Blockwise8 => {
                let q = on.expect("8-bit slots are active");
                w += &format!(
                    "@group(0) @binding({b}) var<storage, read_write> {name}: array<u32>;\n\
                     var<private> pending_{name}: V;\n\
                     fn load_{name}(i: u32) -> V {{ return pending_{name}; }}\n\
                     fn store_{name}(i: u32, v: V) {{ pending_{name} = v; }}\n"
                );
                let m = active[q].1.index();
                let at = format!("{q}u * (arrayLength(&absmax) / {n_quant}u) + j / 64u");
                begin +=
                    &format!("    pending_{name} = q8x4_unpack({name}[j], absmax[{at}], {m}u);\n");
                let lane = ["x", "y", "z", "w"][q];
                lane_max[q] = format!("q8_lane_max(pending_{name})");
                flush += &format!(
                    "        {name}[j] = q8x4_pack(pending_{name}, a.{lane}, {m}u);\n\
                     \x20       if q_lane % 64u == 0u {{ absmax[{at}] = a.{lane}; }}\n"
                );
            }
        }
    }
    if quant {
        let b = first + slots.len() as u32;
        w += &format!(
            "@group(0) @binding({b}) var<storage, read_write> absmax: array<f32>;\n\
             @group(0) @binding({}) var<uniform> qmaps: array<vec4<u32>, 128>;\n",
            b + 1
        );
        w += &format!(
            "// Decodes this invocation's vec4 of every 8-bit state.\n\
             fn q8_begin(i: u32) {{\n    let j = i + state_shift;\n{begin}}}\n\
             // Every 8-bit state's absmax in one reduction, then codes and absmax stored.\n\
             fn q8_flush(i: u32) {{\n    let j = i + state_shift;\n    \
             let a = q8_absmax4(vec4<f32>({}));\n    if q_active {{\n{flush}    }}\n}}\n",
            lane_max.join(", ")
        );
        w += precision::BLOCKWISE8_WGSL;
    }
    let half = storage.param != ParamDtype::F32 || storage.grad != ParamDtype::F32;
    if dtype == StateDtype::Bf16 || half {
        w += precision::BF16_WGSL;
    }
    if half {
        w += precision::rounding::ROUNDING_WGSL;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ParamLayout;

    #[test]
    fn f32_states_sit_where_the_params_do() {
        let layout = ParamLayout::new(&[
            ("a", &[3][..]),
            ("b", &[0][..]),
            ("c", &[1500][..]),
            ("d", &[70][..]),
        ])
        .unwrap();
        let placement = Placement::new(&layout, 1024).unwrap();
        let numels: Vec<u64> = layout.tensors().iter().map(|t| t.numel).collect();
        let sp = StatePlacement::new(
            &placement,
            &numels,
            &[0, 0, 1, 0],
            &[StateDtype::F32; 2],
            MIN_8BIT_SIZE,
        );
        for k in 0..4 {
            for (j, p) in placement.pieces(k).iter().enumerate() {
                assert_eq!(sp.offsets[k][j], p.chunk_offset, "tensor {k} piece {j}");
            }
        }
        for (c, &len) in placement.chunk_lens().iter().enumerate() {
            assert_eq!(sp.lens[&(c, StateDtype::F32)], len);
        }
    }

    #[test]
    fn formats_pack_apart_and_small_tensors_stay_f32() {
        let layout =
            ParamLayout::new(&[("w", &[5000][..]), ("b", &[10][..]), ("v", &[300][..])]).unwrap();
        let placement = Placement::new(&layout, 1 << 20).unwrap();
        let numels: Vec<u64> = layout.tensors().iter().map(|t| t.numel).collect();
        let sp = StatePlacement::new(
            &placement,
            &numels,
            &[0, 0, 0],
            &[StateDtype::Blockwise8],
            256,
        );
        assert_eq!(
            sp.dtypes,
            vec![
                StateDtype::Blockwise8,
                StateDtype::F32,
                StateDtype::Blockwise8
            ]
        );
        assert_eq!(sp.offsets, vec![vec![0], vec![0], vec![5120]]);
        assert_eq!(sp.lens[&(0, StateDtype::Blockwise8)], 5120 + 512);
        assert_eq!(sp.lens[&(0, StateDtype::F32)], 64);
    }
}
