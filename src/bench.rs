//! Shared pieces of the benchmarks (criterion benches and the harness): the
//! standard tensor mixes, bytes moved per parameter, and the same-device
//! WGSL copy kernel that serves as the streaming roofline.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::gpu::{Gpu, Kernel, Slot, WORKGROUP_SIZE, grid};
use crate::layout::ParamLayout;
use crate::optim::Algorithm;
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

/// One tensor of `n` elements.
pub fn single_tensor_layout(n: usize) -> ParamLayout {
    ParamLayout::new(&[("w", &[n][..])]).expect("one name")
}

/// Bytes one step moves per parameter: reads of param, grad and each state,
/// writes of param and each state, 4 bytes each (Adam: 28).
pub fn bytes_per_param(algorithm: &Algorithm) -> u64 {
    let s = algorithm.state_names().len() as u64;
    (3 + 2 * s) * 4
}

/// The copy kernel (`shaders/copy.wgsl`) over two buffers of `bytes / 2`
/// bytes each: one run reads and writes `bytes` in total.
pub struct CopyKernel {
    kernel: Arc<Kernel>,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
    /// Bytes one run moves (read + write).
    pub bytes: u64,
    _bufs: [wgpu::Buffer; 2],
}

impl CopyKernel {
    /// A copy moving about `bytes` (rounded up to whole vec4s) per run.
    pub fn new(gpu: &Gpu, bytes: u64) -> Result<CopyKernel> {
        let vec4s = (bytes / 2).div_ceil(16).max(1);
        let kernel = gpu.kernel(
            "bench/copy",
            include_str!("../shaders/copy.wgsl"),
            &[Slot::StorageRead, Slot::StorageReadWrite],
            &[],
        )?;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let (src, dst, bind_group) = gpu.scoped("bench/copy/new", || {
            let src = gpu.create_buffer("bench/copy/src", vec4s * 16, usage);
            let dst = gpu.create_buffer("bench/copy/dst", vec4s * 16, usage);
            let bg = gpu.create_bind_group(
                "bench/copy",
                &kernel.layout,
                &[src.as_entire_binding(), dst.as_entire_binding()],
            );
            (src, dst, bg)
        })?;
        let groups = vec4s.div_ceil(WORKGROUP_SIZE as u64) as u32;
        Ok(CopyKernel {
            grid: grid(groups, gpu.limits().max_compute_workgroups_per_dimension),
            kernel,
            bind_group,
            bytes: vec4s * 32,
            _bufs: [src, dst],
        })
    }

    /// Submits one copy (does not wait).
    pub fn submit(&self, gpu: &Gpu) -> Result<()> {
        gpu.scoped("bench/copy", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bench/copy"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("bench/copy"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&self.kernel.pipeline);
                pass.set_bind_group(0, &self.bind_group, &[]);
                pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
            }
            gpu.queue().submit([enc.finish()]);
        })
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
