//! The digits example's model and training loop, shared by the example's
//! command line (`main.rs`) and its test (`tests/train_digits.rs`).
//!
//! Forward and backward passes are WGSL kernels (`mlp.wgsl`) that read the
//! engine's params buffer and write its grads buffer; the engine does the
//! rest: AdamW (or another optimizer), linear warmup + cosine decay,
//! global-norm clipping, early stopping on validation loss with restore-best.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;

use wgpu_optim::checkpoint::{self, TrainingState};
use wgpu_optim::collective::ReduceOp;
use wgpu_optim::early_stopping::{BestWeights, EarlyStopping, EarlyStoppingConfig};
use wgpu_optim::grad::{GradAccumulator, LossScale, NonFinite};
use wgpu_optim::optim::*;
use wgpu_optim::pool::{DataParallel, DevicePool};
use wgpu_optim::rng::SplitMix64;
use wgpu_optim::schedule::{LrScheduler, Schedule};
use wgpu_optim::{Gpu, ParamDtype, ParamLayout, ParamSet, ParamSetOptions, ParamUpdate};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const N_IN: usize = 64;
pub const N_HID: usize = 128;
pub const N_OUT: usize = 10;

/// The handwritten digits: `n` samples of 64 features in [0, 1] and labels.
pub struct Data {
    pub x: Vec<f32>,
    pub y: Vec<u32>,
}

impl Data {
    pub fn len(&self) -> usize {
        self.y.len()
    }
}

/// Reads the gzip'd CSV (64 pixel values 0..16, then the label).
pub fn load_digits(path: &Path) -> Result<Data, BoxError> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| format!("{} is not a readable gzip'd CSV: {e}", path.display()))?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Vec<f32> = line
            .split(',')
            .map(|s| s.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
        if v.len() != N_IN + 1 || !(0.0..=9.0).contains(&v[N_IN]) {
            return Err(format!(
                "{} line {}: expected 64 pixels and a label 0..9",
                path.display(),
                n + 1
            )
            .into());
        }
        x.extend(v[..N_IN].iter().map(|p| p / 16.0));
        y.push(v[N_IN] as u32);
    }
    Ok(Data { x, y })
}

/// Test 20% (held out), validation 10% of the rest (early stopping), train.
pub struct Split {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub test: Vec<u32>,
}

pub fn split(n: usize, seed: u64) -> Split {
    let mut ids: Vec<u32> = (0..n as u32).collect();
    SplitMix64(seed ^ 0x5EED).shuffle(&mut ids);
    let n_test = n / 5;
    let n_val = (n - n_test) / 10;
    Split {
        test: ids[..n_test].to_vec(),
        val: ids[n_test..n_test + n_val].to_vec(),
        train: ids[n_test + n_val..].to_vec(),
    }
}

pub fn layout() -> ParamLayout {
    ParamLayout::new(&[
        ("fc1.weight", &[N_HID, N_IN][..]),
        ("fc1.bias", &[N_HID][..]),
        ("fc2.weight", &[N_OUT, N_HID][..]),
        ("fc2.bias", &[N_OUT][..]),
    ])
    .expect("fixed layout")
}

/// PyTorch's nn.Linear initialization: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
pub fn init_params(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64(seed);
    let mut u = |n: usize, fan_in: usize| {
        let k = 1.0 / (fan_in as f32).sqrt();
        (0..n).map(|_| rng.uniform(-k, k)).collect::<Vec<f32>>()
    };
    vec![
        u(N_HID * N_IN, N_IN),
        u(N_HID, N_IN),
        u(N_OUT * N_HID, N_HID),
        u(N_OUT, N_HID),
    ]
}

/// Mirrors `struct Dims` in mlp.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Dims {
    batch: u32,
    batch_start: u32,
    metric_start: u32,
    grad_divisor: u32,
    off_w1: u32,
    off_b1: u32,
    off_w2: u32,
    off_b2: u32,
    scratch_logits: u32,
    loss_scale: f32,
    _pad: [u32; 2],
}

/// The WGSL of the params (binding 4) and grads (binding 5) in their
/// dtypes: `param(e)` reads element `e` as f32, `store_grads(e, a, b)`
/// writes elements `e` (even) and `e + 1`, rounded to nearest even when
/// 16-bit (wgpu-optim's `precision::CONVERSIONS_WGSL`, appended after
/// `mlp.wgsl`).
fn param_access(param: ParamDtype, grad: ParamDtype) -> String {
    let p = match param {
        ParamDtype::F32 => "@group(0) @binding(4) var<storage, read> params: array<f32>;\n\
                            fn param(e: u32) -> f32 { return params[e]; }\n"
            .to_string(),
        d => format!(
            "@group(0) @binding(4) var<storage, read> params: array<u32>;\n\
             fn param(e: u32) -> f32 {{\n    \
             let h = (params[e / 2u] >> (16u * (e & 1u))) & 0xffffu;\n    \
             return {};\n}}\n",
            if d == ParamDtype::Bf16 {
                "bitcast<f32>(h << 16u)"
            } else {
                "f16_value(h)"
            }
        ),
    };
    let g = match grad {
        ParamDtype::F32 => "@group(0) @binding(5) var<storage, read_write> grads: array<f32>;\n\
                            fn store_grads(e: u32, a: f32, b: f32) { grads[e] = a; grads[e + 1u] = b; }\n"
            .to_string(),
        d => {
            let f = if d == ParamDtype::Bf16 { "bf16_bits" } else { "f16_bits" };
            format!(
                "@group(0) @binding(5) var<storage, read_write> grads: array<u32>;\n\
                 fn store_grads(e: u32, a: f32, b: f32) {{ grads[e / 2u] = {f}(a) | ({f}(b) << 16u); }}\n"
            )
        }
    };
    format!("// Generated by model.rs (param_access).\n{p}{g}")
}

/// The static loss scale of gradients stored as `d`: f16's smallest
/// subnormal is 6e-8 and the example's per-sample gradients reach 1e-7, so
/// f16 gradients carry a factor 1024 (the optimizer divides it out);
/// otherwise 1.
pub fn loss_scale(d: ParamDtype) -> f64 {
    if d == ParamDtype::F16 { 1024.0 } else { 1.0 }
}

/// The MLP's kernels and buffers on one device, bound to one ParamSet.
pub struct Mlp {
    pipelines: Vec<(wgpu::ComputePipeline, u32)>,
    bind_group: wgpu::BindGroup,
    dims: wgpu::Buffer,
    idx: wgpu::Buffer,
    metrics: wgpu::Buffer,
    offsets: [u32; 4],
    scratch_logits: u32,
    /// The static loss scale the gradients carry (f16 gradients).
    loss_scale: f32,
    n_train: usize,
    n_val: usize,
    n_test: usize,
}

fn storage(gpu: &Gpu, label: &str, bytes: &[u8], writable: bool) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    let _ = writable;
    gpu.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage,
        })
}

impl Mlp {
    /// Uploads the data once and builds the five kernels.
    pub fn new(
        gpu: &Gpu,
        params: &ParamSet,
        data: &Data,
        split: &Split,
        max_batch: usize,
    ) -> Result<Mlp, BoxError> {
        if params.num_chunks() != 1 {
            return Err(
                "the example's kernels bind chunk 0 only: the model must fit one chunk".into(),
            );
        }
        let off = |name: &str| -> Result<u32, BoxError> {
            Ok(params.pieces(name)?[0].chunk_offset as u32)
        };
        let offsets = [
            off("fc1.weight")?,
            off("fc1.bias")?,
            off("fc2.weight")?,
            off("fc2.bias")?,
        ];
        let device = gpu.device();
        let source = format!(
            "{}{}{}",
            param_access(params.param_dtype(), params.grad_dtype()),
            include_str!("mlp.wgsl"),
            wgpu_optim::precision::CONVERSIONS_WGSL
        );
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("example/mlp"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let rows = max_batch.max(split.val.len()).max(split.test.len());
        let scratch_logits = (rows * N_HID) as u32;
        let x = storage(gpu, "example/x", bytemuck::cast_slice(&data.x), false);
        let y = storage(gpu, "example/y", bytemuck::cast_slice(&data.y), false);
        let mut ids: Vec<u32> = split.train.clone();
        ids.extend(&split.val);
        ids.extend(&split.test);
        let idx = storage(gpu, "example/idx", bytemuck::cast_slice(&ids), false);
        let scratch = storage(
            gpu,
            "example/scratch",
            &vec![0u8; rows * (N_HID + N_OUT) * 4],
            true,
        );
        let metrics = storage(gpu, "example/metrics", &vec![0u8; ids.len() * 2 * 4], true);
        let dims = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("example/dims"),
            size: std::mem::size_of::<Dims>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let ro = |b| wgpu::BindGroupLayoutEntry {
            binding: b,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: if b == 0 {
                    wgpu::BufferBindingType::Uniform
                } else {
                    wgpu::BufferBindingType::Storage { read_only: b < 5 }
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("example/mlp"),
            entries: &(0..8).map(ro).collect::<Vec<_>>(),
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("example/mlp"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let bufs = [
            dims.as_entire_binding(),
            x.as_entire_binding(),
            y.as_entire_binding(),
            idx.as_entire_binding(),
            params.param_buffers()[0].as_entire_binding(),
            params.grad_buffers()[0].as_entire_binding(),
            scratch.as_entire_binding(),
            metrics.as_entire_binding(),
        ];
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("example/mlp"),
            layout: &bgl,
            entries: &bufs
                .iter()
                .enumerate()
                .map(|(i, r)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: r.clone(),
                })
                .collect::<Vec<_>>(),
        });
        let pipelines = [
            "forward_hidden",
            "forward_head",
            "backward_out",
            "backward_hidden",
            "backward_in",
        ]
        .iter()
        .map(|e| {
            (
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(e),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(e),
                    compilation_options: Default::default(),
                    cache: None,
                }),
                0,
            )
        })
        .collect();
        Ok(Mlp {
            pipelines,
            bind_group,
            dims,
            idx,
            metrics,
            offsets,
            scratch_logits,
            loss_scale: loss_scale(params.grad_dtype()) as f32,
            n_train: split.train.len(),
            n_val: split.val.len(),
            n_test: split.test.len(),
        })
    }

    /// Zeroes the per-sample metrics (each device writes only its shards).
    pub fn clear_metrics(&self, gpu: &Gpu) {
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        enc.clear_buffer(&self.metrics, 0, None);
        gpu.queue().submit([enc.finish()]);
    }

    /// Rewrites the train part of the sample list (a new epoch's order).
    pub fn set_train_order(&self, gpu: &Gpu, order: &[u32]) {
        gpu.queue()
            .write_buffer(&self.idx, 0, bytemuck::cast_slice(order));
    }

    /// Records forward (and with `backward`, the gradients) for `batch`
    /// samples starting at `start` of the sample list; grads are divided by
    /// `divisor` (the batch size of a mean loss).
    pub fn run(&self, gpu: &Gpu, start: usize, batch: usize, divisor: usize, backward: bool) {
        let d = Dims {
            batch: batch as u32,
            batch_start: start as u32,
            metric_start: start as u32,
            grad_divisor: divisor as u32,
            off_w1: self.offsets[0],
            off_b1: self.offsets[1],
            off_w2: self.offsets[2],
            off_b2: self.offsets[3],
            scratch_logits: self.scratch_logits,
            loss_scale: self.loss_scale,
            _pad: [0; 2],
        };
        gpu.queue()
            .write_buffer(&self.dims, 0, bytemuck::bytes_of(&d));
        // The backward passes that write gradients take a pair each.
        let sizes = [
            batch * N_HID,
            batch,
            (N_OUT * N_HID + N_OUT) / 2,
            batch * N_HID,
            (N_HID * N_IN + N_HID) / 2,
        ];
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_bind_group(0, &self.bind_group, &[]);
            let n = if backward { 5 } else { 2 };
            for ((p, _), size) in self.pipelines.iter().zip(sizes).take(n) {
                pass.set_pipeline(p);
                pass.dispatch_workgroups((size as u32).div_ceil(64), 1, 1);
            }
        }
        gpu.queue().submit([enc.finish()]);
    }

    /// Mean (loss, accuracy) over `n` samples from `start`, read back.
    pub fn metrics(&self, gpu: &Gpu, start: usize, n: usize) -> Result<(f64, f64), BoxError> {
        let (l, a) = self.metric_sums(gpu, start, n)?;
        Ok((l / n as f64, a / n as f64))
    }

    /// Summed (loss, correct) over `n` samples from `start`, read back.
    pub fn metric_sums(&self, gpu: &Gpu, start: usize, n: usize) -> Result<(f64, f64), BoxError> {
        let staging = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("example/metrics/readback"),
            size: (n * 8) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(
            &self.metrics,
            (start * 8) as u64,
            &staging,
            0,
            (n * 8) as u64,
        );
        let sub = gpu.queue().submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.device().poll(wgpu::PollType::Wait {
            submission_index: Some(sub),
            timeout: Some(std::time::Duration::from_secs(60)),
        })?;
        // The callback may run on another thread polling the same device.
        rx.recv_timeout(std::time::Duration::from_secs(60))??;
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range()?);
        let (mut loss, mut acc) = (0.0f64, 0.0f64);
        for m in v.chunks(2) {
            loss += m[0] as f64;
            acc += m[1] as f64;
        }
        Ok((loss, acc))
    }

    pub fn eval_val(&self, gpu: &Gpu) -> Result<(f64, f64), BoxError> {
        self.run(gpu, self.n_train, self.n_val, self.n_val, false);
        self.metrics(gpu, self.n_train, self.n_val)
    }

    pub fn eval_test(&self, gpu: &Gpu) -> Result<(f64, f64), BoxError> {
        let start = self.n_train + self.n_val;
        self.run(gpu, start, self.n_test, self.n_test, false);
        self.metrics(gpu, start, self.n_test)
    }
}

/// The example's settings (its command-line flags).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub optimizer: String,
    pub epochs: u64,
    pub seed: u64,
    pub batch: usize,
    pub lr: Option<f64>,
    pub warmup_epochs: u64,
    pub max_norm: f64,
    pub patience: u64,
    /// Data-parallel devices (logical devices on one adapter when there is one).
    pub devices: usize,
    /// Micro-batches per optimizer step: each batch is cut into this many
    /// and their gradients are accumulated on the device (1: none).
    pub accumulate: usize,
    /// How the optimizer states are stored (f32, bf16, 8-bit; tensors under
    /// bitsandbytes' 4096 elements stay f32 with 8 bits: here all but
    /// `fc1.weight`, 8192 of the model's 9610 parameters).
    pub state_dtype: StateDtype,
    /// How the params and grads are stored (f32, bf16, f16).
    pub param_dtype: ParamDtype,
    /// How 16-bit params take each step (round to nearest, f32 master
    /// weights, stochastic rounding).
    pub param_update: ParamUpdate,
    /// With several devices: each keeps the optimizer state of its shard of
    /// the tensors only (ZeRO-1), and saves its own checkpoint.
    pub shard_state: bool,
    /// Written after every epoch and at the end (atomically).
    pub checkpoint: Option<std::path::PathBuf>,
    /// Continue from this checkpoint.
    pub resume: Option<std::path::PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            optimizer: "adamw".into(),
            accumulate: 1,
            state_dtype: StateDtype::F32,
            param_dtype: ParamDtype::F32,
            param_update: ParamUpdate::RoundNearest,
            shard_state: false,
            epochs: 60,
            seed: 0,
            batch: 32,
            lr: None,
            warmup_epochs: 3,
            max_norm: 1.0,
            patience: 10,
            devices: 1,
            checkpoint: None,
            resume: None,
        }
    }
}

/// The optimizer spec for `name` with the example's default lr for it.
/// The optimizers `--optimizer` takes.
pub const OPTIMIZERS: &[&str] = &[
    "sgd",
    "adam",
    "adamw",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adamax",
    "nadam",
    "radam",
    "lion",
    "adopt",
    "lamb",
    "lars",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "muon",
    "adafactor",
];

pub fn spec_for(name: &str, lr: Option<f64>, max_norm: f64) -> Result<OptimizerSpec, BoxError> {
    let spec = match name {
        "sgd" => OptimizerSpec::sgd(SgdConfig {
            lr: lr.unwrap_or(0.1),
            momentum: 0.9,
            nesterov: true,
            ..Default::default()
        }),
        "adam" => OptimizerSpec::adam(AdamConfig {
            lr: lr.unwrap_or(1e-2),
            ..Default::default()
        }),
        "adamw" => OptimizerSpec::adamw(AdamWConfig {
            lr: lr.unwrap_or(1e-2),
            weight_decay: 1e-2,
            ..Default::default()
        })
        .group(ParamGroup::matching("*.bias").weight_decay(0.0)),
        "adagrad" => OptimizerSpec::adagrad(AdagradConfig {
            lr: lr.unwrap_or(5e-2),
            ..Default::default()
        }),
        "adadelta" => OptimizerSpec::adadelta(AdadeltaConfig {
            lr: lr.unwrap_or(1.0),
            ..Default::default()
        }),
        "rmsprop" => OptimizerSpec::rmsprop(RmsPropConfig {
            lr: lr.unwrap_or(1e-3),
            ..Default::default()
        }),
        "adamax" => OptimizerSpec::adamax(AdamaxConfig {
            lr: lr.unwrap_or(2e-2),
            ..Default::default()
        }),
        "nadam" => OptimizerSpec::nadam(NAdamConfig {
            lr: lr.unwrap_or(1e-2),
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            ..Default::default()
        })
        .group(ParamGroup::matching("*.bias").weight_decay(0.0)),
        "radam" => OptimizerSpec::radam(RAdamConfig {
            lr: lr.unwrap_or(1e-2),
            ..Default::default()
        }),
        // Lion: an lr 10-30x smaller than AdamW's, a decay 10x larger.
        "lion" => OptimizerSpec::lion(LionConfig {
            lr: lr.unwrap_or(3e-4),
            weight_decay: 0.1,
            ..Default::default()
        })
        .group(ParamGroup::matching("*.bias").weight_decay(0.0)),
        "adopt" => OptimizerSpec::adopt(AdoptConfig {
            lr: lr.unwrap_or(1e-2),
            ..Default::default()
        }),
        // LAMB and LARS: per-tensor trust ratios; biases and norms are
        // usually left out of the decay (and, for LARS, out of the ratio).
        "lamb" => OptimizerSpec::lamb(LambConfig {
            lr: lr.unwrap_or(1e-2),
            weight_decay: 1e-2,
            ..Default::default()
        })
        .group(ParamGroup::matching("*.bias").weight_decay(0.0)),
        "lars" => OptimizerSpec::lars(LarsConfig {
            lr: lr.unwrap_or(5.0),
            weight_decay: 1e-4,
            ..Default::default()
        })
        .group(
            ParamGroup::matching("*.bias")
                .weight_decay(0.0)
                .set("trust_ratio_mask", 0.0)
                .lr(0.1),
        ),
        // Schedule-Free: no schedule (run() keeps the lr constant), its own
        // warmup, and eval() / train() around every evaluation.
        "schedule_free_adamw" => OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig {
            lr: lr.unwrap_or(1e-2),
            warmup_steps: 50.0,
            ..Default::default()
        }),
        "schedule_free_sgd" => OptimizerSpec::schedule_free_sgd(ScheduleFreeSgdConfig {
            lr: lr.unwrap_or(0.5),
            warmup_steps: 50.0,
            ..Default::default()
        }),
        // Muon orthogonalizes the weight matrices; the biases run AdamW in
        // their own param group (Muon takes 2-D tensors only), in the same
        // step.
        "muon" => OptimizerSpec::muon(MuonConfig {
            lr: lr.unwrap_or(0.02),
            ..Default::default()
        })
        .group(ParamGroup::matching("*.bias").algorithm(AdamWConfig {
            lr: 1e-2,
            ..Default::default()
        })),
        // Adafactor: torch's defaults (relative step size min(lr, 1/sqrt(t))).
        "adafactor" => OptimizerSpec::adafactor(AdafactorConfig {
            lr: lr.unwrap_or(1e-2),
            ..Default::default()
        }),
        other => {
            return Err(
                format!("unknown optimizer {other:?}: use {}", OPTIMIZERS.join(", ")).into(),
            );
        }
    };
    Ok(spec.clip_by_global_norm(max_norm))
}

/// One epoch's figures.
#[derive(Clone, Debug)]
pub struct EpochStats {
    pub epoch: u64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub lr: f64,
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct Summary {
    pub test_loss: f64,
    pub test_acc: f64,
    pub epochs_run: u64,
    pub best_epoch: Option<u64>,
    pub stop_reason: String,
    pub history: Vec<EpochStats>,
    pub final_params: Vec<Vec<f32>>,
    pub adapter: String,
}

/// Where replica `i` of a run with sharded optimizer state keeps its
/// checkpoint: `path` for replica 0, `path.shard<i>` for the others.
pub fn shard_path(path: &Path, i: usize) -> std::path::PathBuf {
    if i == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".shard{i}"));
    s.into()
}

/// Where the best weights so far are kept next to checkpoint `path`.
pub fn best_path(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".best");
    s.into()
}

/// The devices: the default adapter for one, `n` logical devices for more.
pub fn open_devices(n: usize) -> Result<DevicePool, BoxError> {
    if n == 0 {
        return Err("--devices must be at least 1".into());
    }
    Ok(if n == 1 {
        DevicePool::from_gpus(vec![Gpu::new_default()?])?
    } else {
        DevicePool::logical(n)?
    })
}

/// `b` samples from `start`, cut into `n` contiguous shards (sizes differ by
/// at most one; a shard may be empty when n > b).
fn shards(start: usize, b: usize, n: usize) -> Vec<(usize, usize)> {
    let mut at = start;
    (0..n)
        .map(|i| {
            let len = b / n + usize::from(i < b % n);
            let s = (at, len);
            at += len;
            s
        })
        .collect()
}

/// Trains data-parallel on `pool`; `on_epoch` sees each epoch's figures.
///
/// Each device computes the gradient of its shard of every batch, scaled by
/// 1 / (whole batch), and the all-reduce sums them (`ReduceOp::Sum`): the
/// full-batch mean gradient, the same as one device up to f32 summation order.
pub fn train(
    pool: &DevicePool,
    data: &Data,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<Summary, BoxError> {
    let split = split(data.len(), cfg.seed);
    let layout = layout();
    let mut spec = spec_for(&cfg.optimizer, cfg.lr, cfg.max_norm)?
        .state_dtype(cfg.state_dtype)
        .param_update(cfg.param_update)
        .rounding_seed(cfg.seed as u32);
    let scale = loss_scale(cfg.param_dtype);
    if scale != 1.0 {
        // f16 gradients: a static scale; a step whose gradients overflow
        // is skipped.
        spec = spec
            .loss_scale(LossScale::Static(scale))
            .nonfinite(NonFinite::Skip);
    }
    let options = ParamSetOptions {
        param_dtype: cfg.param_dtype,
        grad_dtype: cfg.param_dtype,
        chunk_elems: None,
    };
    let mut dp: DataParallel = if cfg.shard_state {
        pool.replicate_sharded(&layout, &spec, options)?
    } else {
        pool.replicate_as(&layout, &spec, options)?
    };
    dp.set_reduce_op(ReduceOp::Sum)?;
    let n = dp.len();
    let init = init_params(cfg.seed);
    for (t, v) in layout.tensors().iter().zip(&init) {
        dp.replica_mut(0).write_params(&t.name, v)?;
    }
    dp.broadcast_params_from_0()?;
    let mlps = dp
        .replicas()
        .iter()
        .map(|r| Mlp::new(&r.gpu, &r.params, data, &split, cfg.batch))
        .collect::<Result<Vec<_>, _>>()?;
    if cfg.accumulate == 0 || cfg.accumulate > cfg.batch {
        return Err(format!(
            "--accumulate {} must be between 1 and the batch size {}",
            cfg.accumulate, cfg.batch
        )
        .into());
    }
    let mut accumulators = dp
        .replicas()
        .iter()
        .map(|r| GradAccumulator::new(&r.gpu, &r.params, cfg.accumulate as u32))
        .collect::<Result<Vec<_>, _>>()?;
    let steps_per_epoch = split.train.len().div_ceil(cfg.batch) as u64;
    let total = (cfg.epochs * steps_per_epoch).max(2);
    let peak = dp.replica(0).opt.group_hp(0)?.lr;
    let warmup = (cfg.warmup_epochs * steps_per_epoch).min(total - 1);
    // Schedule-Free replaces the schedule (a constant lr; it warms up itself).
    let schedule_free = dp.replica(0).opt.has_eval_mode();
    let schedule = if schedule_free {
        Schedule::constant(peak)?
    } else {
        Schedule::warmup_cosine(peak, warmup, total, peak / 100.0)?
    };
    let mut sched = LrScheduler::new_data_parallel(&mut dp, schedule)?;
    let mut stop = EarlyStopping::new(EarlyStoppingConfig {
        patience: cfg.patience,
        restore_best_weights: true,
        ..Default::default()
    })?;
    let mut first_epoch = 0;
    let mut best = Vec::new();
    if let Some(path) = &cfg.resume {
        // The best weights so far first (into the snapshot), then the state.
        let best_path = best_path(path);
        let have_best = best_path.exists();
        let mut training = TrainingState::default();
        for (i, r) in dp.replicas_mut().iter_mut().enumerate() {
            if have_best {
                checkpoint::import_params(&best_path, &r.gpu, &mut r.params)?;
            }
            let mut b = BestWeights::new(&r.gpu, &r.params)?;
            if have_best {
                b.mark_saved();
            }
            best.push(b);
            // With sharded state each replica has its own file.
            let file = if cfg.shard_state {
                shard_path(path, i)
            } else {
                path.clone()
            };
            training = checkpoint::load(&file, &r.gpu, &mut r.params, &mut r.opt)?;
        }
        first_epoch = training.epoch;
        sched = training
            .scheduler
            .ok_or("the checkpoint has no scheduler state")?;
        stop = training
            .early_stopping
            .ok_or("the checkpoint has no early-stopping state")?;
    } else {
        for r in dp.replicas() {
            best.push(BestWeights::new(&r.gpu, &r.params)?);
        }
    }
    sched.apply_data_parallel(&mut dp)?;
    let mut history = Vec::new();
    let mut stop_reason = format!("ran all {} epochs", cfg.epochs);
    let save = |dp: &mut DataParallel,
                epoch: u64,
                sched: &LrScheduler,
                stop: &EarlyStopping,
                best: &BestWeights|
     -> Result<(), BoxError> {
        if let Some(path) = &cfg.checkpoint {
            let r = dp.replica_mut(0);
            if best.has_snapshot() {
                checkpoint::export_snapshot(&best_path(path), &r.gpu, &r.params, best.snapshot())?;
            }
            let state = TrainingState {
                epoch,
                scheduler: Some(sched.clone()),
                early_stopping: Some(stop.clone()),
                ..Default::default()
            };
            // With sharded state every replica saves its shard's states
            // (replica 0 at `path`, the others beside it).
            let n = if cfg.shard_state { dp.len() } else { 1 };
            for i in 0..n {
                let r = dp.replica_mut(i);
                checkpoint::save(&shard_path(path, i), &r.gpu, &r.params, &mut r.opt, &state)?;
            }
        }
        Ok(())
    };
    // Schedule-Free evaluates, keeps the best of, and saves its averaged
    // weights x (eval mode); it trains at y (train mode).
    let set_mode = |dp: &mut DataParallel, eval: bool| -> Result<(), BoxError> {
        if schedule_free {
            for r in dp.replicas_mut() {
                if eval {
                    r.opt.eval(&r.gpu, &mut r.params)?;
                } else {
                    r.opt.train(&r.gpu, &mut r.params)?;
                }
            }
        }
        Ok(())
    };
    for epoch in first_epoch..cfg.epochs {
        set_mode(&mut dp, false)?;
        // The order of an epoch depends on (seed, epoch) only: resuming needs no replay.
        let mut order = split.train.clone();
        SplitMix64(cfg.seed ^ epoch.wrapping_mul(0x9E37_79B9)).shuffle(&mut order);
        for (r, m) in dp.replicas().iter().zip(&mlps) {
            m.set_train_order(&r.gpu, &order);
            m.clear_metrics(&r.gpu);
        }
        let mut start = 0;
        while start < order.len() {
            let b = cfg.batch.min(order.len() - start);
            // The batch in `accumulate` micro-batches, each sharded over the
            // devices; every gradient is divided by the whole batch, so the
            // accumulated sum is the batch's mean gradient.
            for (ms, ml) in shards(start, b, cfg.accumulate) {
                for (((r, m), acc), (s, len)) in dp
                    .replicas_mut()
                    .iter_mut()
                    .zip(&mlps)
                    .zip(&mut accumulators)
                    .zip(shards(ms, ml, n))
                {
                    if len == 0 {
                        r.params.zero_grads(&r.gpu)?; // no sample: no gradient
                    } else {
                        m.run(&r.gpu, s, len, b, true);
                    }
                    acc.add(&r.gpu, &mut r.params)?;
                }
            }
            dp.step()?;
            sched.advance_data_parallel(&mut dp)?;
            start += b;
        }
        let (mut loss, mut acc) = (0.0, 0.0);
        for (r, m) in dp.replicas().iter().zip(&mlps) {
            let (l, a) = m.metric_sums(&r.gpu, 0, order.len())?;
            loss += l;
            acc += a;
        }
        let (train_loss, train_acc) = (loss / order.len() as f64, acc / order.len() as f64);
        set_mode(&mut dp, true)?;
        let (val_loss, val_acc) = mlps[0].eval_val(&dp.replica(0).gpu)?;
        let e = EpochStats {
            epoch,
            train_loss,
            train_acc,
            val_loss,
            val_acc,
            lr: dp.replica(0).opt.group_hp(0)?.lr,
        };
        on_epoch(&e);
        history.push(e);
        let d = stop.update(epoch, val_loss);
        for (r, b) in dp.replicas_mut().iter_mut().zip(&mut best) {
            b.apply(&r.gpu, &mut r.params, &d)?;
        }
        if d.stop {
            stop_reason = match stop.reason() {
                Some(r) => r.to_string(),
                None => "early stopping".into(),
            };
            break;
        }
        save(&mut dp, epoch + 1, &sched, &stop, &best[0])?;
    }
    set_mode(&mut dp, true)?;
    if !stop.should_stop() && stop.on_train_end() {
        for (r, b) in dp.replicas_mut().iter_mut().zip(&best) {
            b.restore(&r.gpu, &mut r.params)?;
        }
    }
    let last = first_epoch + history.len() as u64;
    save(&mut dp, last, &sched, &stop, &best[0])?;
    let r0 = dp.replica(0);
    let (test_loss, test_acc) = mlps[0].eval_test(&r0.gpu)?;
    Ok(Summary {
        test_loss,
        test_acc,
        epochs_run: history.len() as u64,
        best_epoch: stop.best_epoch(),
        stop_reason,
        history,
        final_params: r0.params.read_all(&r0.gpu)?,
        adapter: format!(
            "{} ({:?}) x{}",
            r0.gpu.info().name,
            r0.gpu.info().backend,
            n
        ),
    })
}
