//! Shared pieces of the benchmarks (criterion benches and the harness): the
//! standard tensor mixes, bytes moved per parameter, and the same-device
//! WGSL copy kernel that serves as the streaming roofline.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Slot, WORKGROUP_SIZE, grid};
use crate::layout::ParamLayout;
use crate::optim::{
    AdadeltaConfig, AdagradConfig, AdamConfig, AdamWConfig, Algorithm, MuonConfig, Optimizer,
    OptimizerSpec, ParamGroup, PassTimestamps, RmsPropConfig, SgdConfig, StateDtype,
};
use crate::params::{ParamSet, ParamSetOptions};
use crate::precision::{ParamDtype, ParamUpdate, QUANT_BLOCK};
use std::sync::Arc;

/// A GPT-2-like mix: 4 layers of (two layer norms' weights and biases of 256,
/// qkv 256x768 + 768, proj 256x256 + 256, mlp 256x1024 + 1024 and
/// 1024x256 + 256), token embeddings 2048x256 and position embeddings
/// 256x256: 50 tensors, 3,748,864 parameters.
pub fn gpt2_like_layout() -> ParamLayout {
    let mut t: Vec<(String, Vec<usize>)> = vec![
        ("wte".into(), vec![2048, 256]),
        ("wpe".into(), vec![256, 256]),
    ];
    for l in 0..4 {
        let p = |s: &str| format!("h{l}.{s}");
        t.push((p("ln_1.weight"), vec![256]));
        t.push((p("ln_1.bias"), vec![256]));
        t.push((p("attn.c_attn.weight"), vec![256, 768]));
        t.push((p("attn.c_attn.bias"), vec![768]));
        t.push((p("attn.c_proj.weight"), vec![256, 256]));
        t.push((p("attn.c_proj.bias"), vec![256]));
        t.push((p("ln_2.weight"), vec![256]));
        t.push((p("ln_2.bias"), vec![256]));
        t.push((p("mlp.c_fc.weight"), vec![256, 1024]));
        t.push((p("mlp.c_fc.bias"), vec![1024]));
        t.push((p("mlp.c_proj.weight"), vec![1024, 256]));
        t.push((p("mlp.c_proj.bias"), vec![256]));
    }
    let pairs: Vec<(&str, &[usize])> = t.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    ParamLayout::new(&pairs).expect("names are unique")
}

/// A GPT-2-XL-like mix of `layers` layers of width `d` and a vocabulary of
/// `vocab` (GPT-2 XL: 48, 1600, 50257, 1,557,611,200 parameters in 580
/// tensors): token and position (1024) embeddings, per layer two layer
/// norms, qkv `d x 3d`, proj `d x d`, mlp `d x 4d` and `4d x d` with their
/// biases, and a final layer norm.
pub fn gpt2_xl_like_layout(layers: usize, d: usize, vocab: usize) -> ParamLayout {
    let mut t: Vec<(String, Vec<usize>)> = vec![
        ("wte".into(), vec![vocab, d]),
        ("wpe".into(), vec![1024, d]),
    ];
    for l in 0..layers {
        let p = |s: &str| format!("h{l}.{s}");
        t.push((p("ln_1.weight"), vec![d]));
        t.push((p("ln_1.bias"), vec![d]));
        t.push((p("attn.c_attn.weight"), vec![d, 3 * d]));
        t.push((p("attn.c_attn.bias"), vec![3 * d]));
        t.push((p("attn.c_proj.weight"), vec![d, d]));
        t.push((p("attn.c_proj.bias"), vec![d]));
        t.push((p("ln_2.weight"), vec![d]));
        t.push((p("ln_2.bias"), vec![d]));
        t.push((p("mlp.c_fc.weight"), vec![d, 4 * d]));
        t.push((p("mlp.c_fc.bias"), vec![4 * d]));
        t.push((p("mlp.c_proj.weight"), vec![4 * d, d]));
        t.push((p("mlp.c_proj.bias"), vec![d]));
    }
    t.push(("ln_f.weight".into(), vec![d]));
    t.push(("ln_f.bias".into(), vec![d]));
    let pairs: Vec<(&str, &[usize])> = t.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    ParamLayout::new(&pairs).expect("names are unique")
}

/// About `n` parameters as tensors of at most 2^28 elements (`w0`, `w1`,
/// ...): the 7 B row's flat model.
pub fn flat_layout(n: u64) -> ParamLayout {
    let piece = 1u64 << 28;
    let names: Vec<String> = (0..n.div_ceil(piece)).map(|i| format!("w{i}")).collect();
    let shapes: Vec<[usize; 1]> = (0..names.len() as u64)
        .map(|i| [piece.min(n - i * piece) as usize])
        .collect();
    let pairs: Vec<(&str, &[usize])> = names
        .iter()
        .zip(&shapes)
        .map(|(n, s)| (n.as_str(), &s[..]))
        .collect();
    ParamLayout::new(&pairs).expect("names are unique")
}

/// One tensor of `n` elements.
pub fn single_tensor_layout(n: usize) -> ParamLayout {
    ParamLayout::new(&[("w", &[n][..])]).expect("one name")
}

/// The optimizers every benchmark runs (criterion's `step` bench and the
/// harness), with the names used in reports.
pub fn standard_optimizers() -> Vec<(&'static str, OptimizerSpec)> {
    let mut v = vec![
        (
            "sgd_momentum",
            OptimizerSpec::sgd(SgdConfig {
                lr: 0.01,
                momentum: 0.9,
                ..Default::default()
            }),
        ),
        ("adam", OptimizerSpec::adam(AdamConfig::default())),
        ("adamw", OptimizerSpec::adamw(AdamWConfig::default())),
        (
            "adam_amsgrad",
            OptimizerSpec::adam(AdamConfig {
                amsgrad: true,
                ..Default::default()
            }),
        ),
        ("adagrad", OptimizerSpec::adagrad(AdagradConfig::default())),
        (
            "adadelta",
            OptimizerSpec::adadelta(AdadeltaConfig::default()),
        ),
        ("rmsprop", OptimizerSpec::rmsprop(RmsPropConfig::default())),
    ];
    // Every other optimizer of the registry, with its defaults. Muon runs
    // as its users run it: `for_layout` gives the tensors that are not
    // hidden matrices to AdamW.
    for a in Algorithm::all_defaults() {
        if !v
            .iter()
            .any(|(n, s)| *n == a.name() || s.algorithm().name() == a.name())
        {
            v.push((a.name(), OptimizerSpec::new(a)));
        }
    }
    v
}

/// Bytes one step moves per parameter: reads of param, grad and each state,
/// writes of param and each state, 4 bytes each (Adam: 28); for the
/// trust-ratio optimizers, both of their passes (LAMB: 40); for Adafactor
/// on matrices its four passes' (28); for Muon its
/// two elementwise passes (read grad, read and write momentum, write the
/// scratch; read and write param, read the scratch: 28), its products'
/// traffic not counted (they are compute-bound: [`muon_flops`]).
pub fn bytes_per_param(algorithm: &Algorithm) -> u64 {
    match algorithm.algo().passes() {
        crate::optim::Passes::Muon => return 7 * 4,
        // Adafactor on a matrix: the row and the column passes read the
        // gradient, measure reads it and the param, apply reads both and
        // writes the param (its states are R + C per matrix): 28.
        crate::optim::Passes::Adafactor => return 7 * 4,
        _ => {}
    }
    if let Some(t) = algorithm.algo().trust() {
        return t.accesses_per_param() * 4;
    }
    let s = algorithm.state_names().len() as u64;
    (3 + 2 * s) * 4
}

/// Whether `name` is an embedding of the mixes (`wte`, `wpe`, `*emb*`):
/// Muon's users give those to AdamW, though they are 2-D.
fn is_embedding(name: &str) -> bool {
    name == "wte" || name == "wpe" || name.contains("emb")
}

/// Muon as its users run it over `layout`: `config` on the hidden
/// matrices (2-D tensors that are not embeddings), AdamW with its defaults
/// on the embeddings, norms and biases, in the same step
/// (`ParamGroup::algorithm`).
pub fn muon_spec(config: MuonConfig, layout: &ParamLayout) -> OptimizerSpec {
    let others: Vec<&str> = layout
        .tensors()
        .iter()
        .filter(|t| t.shape.len() != 2 || is_embedding(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    let spec = OptimizerSpec::muon(config);
    if others.is_empty() {
        return spec;
    }
    spec.group(ParamGroup::names(others).algorithm(AdamWConfig::default()))
}

/// A standard optimizer's spec for `layout`: Muon's as [`muon_spec`]
/// builds it, the others as they are.
pub fn for_layout(spec: &OptimizerSpec, layout: &ParamLayout) -> OptimizerSpec {
    match spec.algorithm() {
        Algorithm::Muon(c) => muon_spec(*c, layout),
        _ => spec.clone(),
    }
}

/// One tensor of `n` elements for a standard optimizer: Muon's is a matrix
/// of `n / k x k`, `k` the largest power of two with `k * k <= n`
/// (square for even powers of two); the others' is 1-D.
pub fn single_layout_for(spec: &OptimizerSpec, n: usize) -> ParamLayout {
    if !matches!(spec.algorithm(), Algorithm::Muon(_)) {
        return single_tensor_layout(n);
    }
    let mut k = 1usize;
    while (2 * k) * (2 * k) <= n {
        k *= 2;
    }
    ParamLayout::new(&[("w", &[n / k, k][..])]).expect("one name")
}

/// Single tensors above this size get no Muon row: a `16384 x 16384`
/// matrix (2^28) costs `30 * 16384^3`, 1.3e14 flops, per step of 5
/// iterations, seconds even on a GPU.
pub const MUON_MAX_SINGLE: u64 = 1 << 24;

/// The floating-point operations of Muon's Newton-Schulz products in one
/// step of `opt` over `layout`, counting the tensors of its Muon groups:
/// per matrix of `m x n` (`m <= n`) and iteration, `X X^T` (`2 m^2 n`),
/// `G G` (`2 m^3`) and `H X` (`2 m^2 n`), as torch's `addmm`s count them.
pub fn muon_flops(opt: &Optimizer, layout: &ParamLayout) -> f64 {
    let mut flops = 0.0;
    for t in layout.tensors() {
        let g = opt.group_of(&t.name).expect("a tensor of the layout");
        if let Ok(Algorithm::Muon(c)) = opt.group_config(g) {
            let (m, n) = (
                t.shape[0].min(t.shape[1]) as f64,
                t.shape[0].max(t.shape[1]) as f64,
            );
            flops += c.ns_steps as f64 * (4.0 * m * m * n + 2.0 * m * m * m);
        }
    }
    flops
}

/// Bytes one step of `opt` moves per parameter, each tensor with its
/// group's algorithm, its state format (`Optimizer::state_dtype`) and the
/// params' and grads' dtypes: param read and write and grad read (f32: 12;
/// bf16 params and grads: 6; with f32 master weights the master is read
/// and written and the param only written: 8 + 2 + 2); each state read and
/// written in its format (f32 8, bf16 4, 8 bits 2, plus its absmax read
/// and written, 8 / 256); averaged over the layout's parameters. Equals
/// [`bytes_per_param`] with f32 states, params and grads. The trust-ratio
/// optimizers and Muon count as [`bytes_per_param`] says.
pub fn bytes_moved_per_param(opt: &Optimizer, layout: &ParamLayout) -> f64 {
    let mut bytes = 0.0;
    for t in layout.tensors() {
        let g = opt.group_of(&t.name).expect("a tensor of the layout");
        let algorithm = opt.group_config(g).expect("its group");
        let passes = algorithm.algo().passes();
        let per = if passes == crate::optim::Passes::Adafactor && t.shape.len() < 2 {
            // A vector: measure reads g, p and the variance and writes the
            // variance, apply reads g, p, the variance and writes p: 32.
            32.0
        } else if passes.per_tensor() {
            bytes_per_param(algorithm) as f64
        } else {
            let states = algorithm.state_names().len() as f64;
            let per_state = match opt.state_dtype(&t.name).expect("a tensor") {
                StateDtype::Blockwise8 => 2.0 + 8.0 / QUANT_BLOCK as f64,
                d => 2.0 * d.bytes(),
            };
            let (pb, gb) = (
                opt.param_dtype().bytes() as f64,
                opt.grad_dtype().bytes() as f64,
            );
            let param = match opt.param_update(&t.name).expect("a tensor") {
                ParamUpdate::MasterWeights => 8.0 + pb,
                _ => 2.0 * pb,
            };
            param + gb + states * per_state
        };
        bytes += t.numel as f64 * per;
    }
    bytes / layout.numel().max(1) as f64
}

/// Device bytes held per parameter by `opt` and its params and grads (f32:
/// 8; bf16 or f16: 4): the params and grads plus
/// [`Optimizer::device_bytes_per_param`] (states, master weights, tables).
pub fn device_bytes_per_param(opt: &Optimizer) -> f64 {
    (opt.param_dtype().bytes() + opt.grad_dtype().bytes()) as f64 + opt.device_bytes_per_param()
}

/// AdamW with each combination of storage formats the benchmarks compare
/// (f32 everything first, the baseline): f32 params with bf16 and 8-bit
/// states, bf16 params and grads with f32 and 8-bit states (rounded to
/// nearest, through f32 master weights, stochastically), f16 with 8-bit
/// states and master weights.
pub fn precision_cases() -> Vec<PrecisionCase> {
    let f32s = ParamSetOptions::default();
    let half = |d| ParamSetOptions {
        param_dtype: d,
        grad_dtype: d,
        chunk_elems: None,
    };
    let b16 = half(ParamDtype::Bf16);
    let f16 = half(ParamDtype::F16);
    use ParamUpdate::*;
    use StateDtype::*;
    [
        (f32s, F32, RoundNearest),
        (f32s, Bf16, RoundNearest),
        (f32s, Blockwise8, RoundNearest),
        (b16, F32, RoundNearest),
        (b16, Blockwise8, RoundNearest),
        (b16, Blockwise8, MasterWeights),
        (b16, Blockwise8, StochasticRounding),
        (f16, Blockwise8, MasterWeights),
    ]
    .into_iter()
    .map(|(options, state, update)| PrecisionCase {
        label: format!(
            "{}+{}{}",
            options.param_dtype.as_str(),
            state.as_str(),
            match update {
                RoundNearest => "",
                MasterWeights => "+master",
                StochasticRounding => "+stochastic",
            }
        ),
        options,
        state,
        update,
        spec: OptimizerSpec::adamw(AdamWConfig::default())
            .state_dtype(state)
            .param_update(update),
    })
    .collect()
}

/// One combination of storage formats of AdamW ([`precision_cases`]).
#[derive(Debug, Clone)]
pub struct PrecisionCase {
    /// `<param dtype>+<state dtype>[+master|+stochastic]`, e.g. `bf16+8bit`.
    pub label: String,
    /// The params' and grads' dtypes.
    pub options: ParamSetOptions,
    /// The states' format.
    pub state: StateDtype,
    /// How the 16-bit params take the step.
    pub update: ParamUpdate,
    /// AdamW with them.
    pub spec: OptimizerSpec,
}

/// A [`ParamSet`] of `layout` in `options`' dtypes with every param 0.5
/// and every gradient 0.01 (the benchmarks' steps).
pub fn filled_params(
    gpu: &Gpu,
    layout: &ParamLayout,
    options: ParamSetOptions,
) -> Result<ParamSet> {
    let mut params = ParamSet::with_options(gpu, layout, options)?;
    for t in layout.tensors() {
        let n = t.numel as usize;
        params.write(gpu, &t.name, &vec![0.5; n])?;
        params.write_grad(gpu, &t.name, &vec![0.01; n])?;
    }
    Ok(params)
}

/// The copy kernel (`bench/copy.wgsl`) over pairs of buffers of at most one
/// storage binding each (`max_storage_buffer_binding_size`), all dispatched
/// in one compute pass: one run reads and writes `bytes` in total, however
/// large, so it can stand beside a step of any size.
pub struct CopyKernel {
    kernel: Arc<Kernel>,
    /// One bind group (source and destination piece) and grid per piece.
    pieces: Vec<(wgpu::BindGroup, (u32, u32))>,
    /// Bytes one run moves (read + write).
    pub bytes: u64,
    _bufs: Vec<wgpu::Buffer>,
}

impl CopyKernel {
    /// A copy moving about `bytes` (rounded up to whole vec4s) per run.
    pub fn new(gpu: &Gpu, bytes: u64) -> Result<CopyKernel> {
        let vec4s = (bytes / 2).div_ceil(16).max(1);
        let limits = gpu.limits();
        // Whole 256-byte units, so every piece is a valid binding size.
        let piece_vec4s = (limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            / 256
            * 16)
            .max(16);
        let kernel = gpu.kernel(
            "bench/copy",
            include_str!("copy.wgsl"),
            &[Slot::StorageRead, Slot::StorageReadWrite],
            &[],
        )?;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let max_dim = limits.max_compute_workgroups_per_dimension;
        let (bufs, pieces) = gpu.scoped("bench/copy/new", || {
            let mut bufs = Vec::new();
            let mut pieces = Vec::new();
            let mut left = vec4s;
            while left > 0 {
                let n = left.min(piece_vec4s);
                left -= n;
                let src = gpu.create_buffer("bench/copy/src", n * 16, usage);
                let dst = gpu.create_buffer("bench/copy/dst", n * 16, usage);
                let bg = gpu.create_bind_group(
                    "bench/copy",
                    &kernel.layout,
                    &[src.as_entire_binding(), dst.as_entire_binding()],
                );
                let groups = n.div_ceil(WORKGROUP_SIZE as u64) as u32;
                pieces.push((bg, grid(groups, max_dim)));
                bufs.extend([src, dst]);
            }
            (bufs, pieces)
        })?;
        Ok(CopyKernel {
            kernel,
            pieces,
            bytes: vec4s * 32,
            _bufs: bufs,
        })
    }

    /// Submits one copy (does not wait).
    pub fn submit(&self, gpu: &Gpu) -> Result<()> {
        self.submit_timed(gpu, None)
    }

    /// Submits one copy (does not wait), writing GPU timestamps around its
    /// compute pass when `timestamps` is given (see [`PassTimer`]).
    pub fn submit_timed(&self, gpu: &Gpu, timestamps: Option<&PassTimestamps>) -> Result<()> {
        gpu.scoped("bench/copy", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bench/copy"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("bench/copy"),
                    timestamp_writes: timestamps.map(|t| wgpu::ComputePassTimestampWrites {
                        query_set: &t.query_set,
                        beginning_of_pass_write_index: Some(t.begin),
                        end_of_pass_write_index: Some(t.end),
                    }),
                });
                pass.set_pipeline(&self.kernel.pipeline);
                for (bg, (x, y)) in &self.pieces {
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(*x, *y, 1);
                }
            }
            gpu.queue().submit([enc.finish()]);
        })
    }
}

/// The driver's own copy, `copy_buffer_to_buffer`, moving the same bytes as a
/// [`CopyKernel`] of `bytes` (half read, half written): the second roofline
/// beside the WGSL copy (a copy engine or the driver's blit on GPUs). Source
/// and destination are cut into buffers of at most `max_buffer_size`.
pub struct BufferCopy {
    pairs: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    /// Bytes one run moves (read + write).
    pub bytes: u64,
}

impl BufferCopy {
    /// A copy moving about `bytes` (rounded up to whole 256-byte units) per run.
    pub fn new(gpu: &Gpu, bytes: u64) -> Result<BufferCopy> {
        let half = (bytes / 2).div_ceil(256).max(1) * 256;
        let piece = (gpu.limits().max_buffer_size / 256 * 256).max(256);
        let pairs = gpu.scoped("bench/buffer-copy/new", || {
            let mut pairs = Vec::new();
            let mut left = half;
            while left > 0 {
                let n = left.min(piece);
                let make = |label: &str, usage| gpu.create_buffer(label, n, usage);
                pairs.push((
                    make("bench/buffer-copy/src", wgpu::BufferUsages::COPY_SRC),
                    make("bench/buffer-copy/dst", wgpu::BufferUsages::COPY_DST),
                ));
                left -= n;
            }
            pairs
        })?;
        Ok(BufferCopy {
            pairs,
            bytes: 2 * half,
        })
    }

    /// Submits one run. With `timestamps`, an empty compute pass writes the
    /// beginning one before the copies and another the end one after them.
    pub fn submit_timed(&self, gpu: &Gpu, timestamps: Option<&PassTimestamps>) -> Result<()> {
        gpu.scoped("bench/buffer-copy", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bench/buffer-copy"),
                });
            let mark = |enc: &mut wgpu::CommandEncoder, t: &PassTimestamps, begin: bool| {
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("bench/buffer-copy/timestamp"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &t.query_set,
                        beginning_of_pass_write_index: begin.then_some(t.begin),
                        end_of_pass_write_index: (!begin).then_some(t.end),
                    }),
                });
            };
            if let Some(t) = timestamps {
                mark(&mut enc, t, true);
            }
            for (src, dst) in &self.pairs {
                enc.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
            }
            if let Some(t) = timestamps {
                mark(&mut enc, t, false);
            }
            gpu.queue().submit([enc.finish()]);
        })
    }
}

/// Times one compute pass on the GPU with two timestamp queries: hand
/// [`writes`](Self::writes) to the pass (an optimizer through
/// [`Optimizer::set_pass_timestamps`](crate::Optimizer::set_pass_timestamps),
/// the copy through [`CopyKernel::submit_timed`]), wait for it, then
/// [`read`](Self::read) the time between the pass's beginning and end.
pub struct PassTimer {
    writes: PassTimestamps,
    resolve: wgpu::Buffer,
    period_ns: f64,
}

impl PassTimer {
    /// A timer on `gpu`, whose device must have been created with
    /// `Features::TIMESTAMP_QUERY` (see [`Gpu::from_adapter_with_features`]).
    ///
    /// # Errors
    /// [`Error::Gpu`] when the device lacks the feature.
    pub fn new(gpu: &Gpu) -> Result<PassTimer> {
        if !gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Gpu {
                context: "bench/timer".into(),
                message: "the device was created without Features::TIMESTAMP_QUERY".into(),
            });
        }
        let (query_set, resolve) = gpu.scoped("bench/timer/new", || {
            let qs = gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("bench/timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolve = gpu.create_buffer(
                "bench/timer/resolve",
                16,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            (qs, resolve)
        })?;
        Ok(PassTimer {
            writes: PassTimestamps {
                query_set,
                begin: 0,
                end: 1,
            },
            resolve,
            period_ns: gpu.queue().get_timestamp_period() as f64,
        })
    }

    /// Where the timed pass writes its timestamps.
    pub fn writes(&self) -> &PassTimestamps {
        &self.writes
    }

    /// The duration of the last timed pass. Call it once that pass has
    /// finished (after [`Gpu::synchronize`]); it waits for its own readback.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the timestamps are not in order (a pass that did
    /// not write them), or a wgpu error.
    pub fn read(&self, gpu: &Gpu) -> Result<Duration> {
        gpu.scoped("bench/timer/resolve", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bench/timer/resolve"),
                });
            enc.resolve_query_set(&self.writes.query_set, 0..2, &self.resolve, 0);
            gpu.queue().submit([enc.finish()]);
        })?;
        let bytes = gpu.read_ranges("bench/timer/read", &[(&self.resolve, 0, 16)])?;
        let ticks: [u64; 2] = bytemuck::pod_read_unaligned(&bytes[..16]);
        if ticks[1] < ticks[0] || ticks[0] == 0 {
            return Err(Error::Gpu {
                context: "bench/timer/read".into(),
                message: format!("timestamps out of order or unwritten: {ticks:?}"),
            });
        }
        let ns = (ticks[1] - ticks[0]) as f64 * self.period_ns;
        Ok(Duration::from_secs_f64(ns * 1e-9))
    }
}

/// Median wall time of `f` (which must include its wait for the GPU) over
/// `reps` runs after one warm-up run.
pub fn median_time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed());
    }
    t.sort();
    Ok(t[t.len() / 2])
}

/// Medians of `a` and `b` run alternately (a, b, a, b, ...) so that both see
/// the same machine load: the way to measure a ratio on a shared machine.
pub fn interleaved(
    reps: usize,
    mut a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
) -> Result<(Duration, Duration)> {
    a()?;
    b()?;
    let (mut ta, mut tb) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let s = Instant::now();
        a()?;
        ta.push(s.elapsed());
        let s = Instant::now();
        b()?;
        tb.push(s.elapsed());
    }
    ta.sort();
    tb.sort();
    Ok((ta[reps / 2], tb[reps / 2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_layouts_have_their_sizes() {
        // GPT-2 XL: 48 layers of 1600, a vocabulary of 50257.
        let xl = gpt2_xl_like_layout(48, 1600, 50257);
        assert_eq!(xl.numel(), 1_557_611_200);
        assert_eq!(xl.len(), 580);
        let flat = flat_layout(7_000_000_000);
        assert_eq!(flat.numel(), 7_000_000_000);
        assert_eq!(flat.len(), 27);
        assert!(flat.tensors().iter().all(|t| t.numel <= 1 << 28));
        assert_eq!(gpt2_xl_like_layout(2, 64, 512).numel(), 198_400);
    }
}
