//! Trains a 64-128-10 MLP on the handwritten digits entirely on the GPU:
//! forward and backward passes in WGSL (`mlp.wgsl`), the optimizer step,
//! warmup + cosine schedule, global-norm clipping and early stopping with
//! restore-best from wgpu-optim.
//!
//! `cargo run --release --example train_digits -- [--optimizer adamw] [--epochs 60] [--seed 0]
//! [--state-dtype f32|bf16|8bit] [--param-dtype f32|bf16|f16] [--master-weights]`

mod model;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// Train a small MLP on the digits data set with wgpu-optim.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// sgd, adam, adamw, adagrad, adadelta, rmsprop, adamax, nadam, radam,
    /// lion or adopt.
    #[arg(long, default_value = "adamw")]
    optimizer: String,
    /// Most epochs to train (early stopping may end sooner).
    #[arg(long, default_value_t = 60)]
    epochs: u64,
    /// Seed of the split, the initial weights and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate (default: per optimizer).
    #[arg(long)]
    lr: Option<f64>,
    /// Early-stopping patience in epochs (validation loss).
    #[arg(long, default_value_t = 10)]
    patience: u64,
    /// Train data-parallel on N devices (N logical devices on one adapter
    /// when there is only one).
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// With --devices N: each device keeps the optimizer state of 1/N of
    /// the tensors only (ZeRO-1; same results, less memory per device) and
    /// writes its own checkpoint (`<checkpoint>.shard<i>` beside the first).
    #[arg(long)]
    shard_optimizer_state: bool,
    /// Micro-batches per step: each batch's gradient is accumulated on the
    /// device over this many micro-batches (same result, less memory per pass).
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// How the optimizer states are stored: f32, bf16 or 8bit (bitsandbytes'
    /// blockwise 8 bits; tensors of fewer than 4096 elements stay f32).
    #[arg(long, default_value = "f32")]
    state_dtype: String,
    /// How the params and their gradients are stored: f32, bf16 or f16
    /// (f16 gradients carry a static loss scale of 1024; a step whose
    /// gradients overflow is skipped).
    #[arg(long, default_value = "f32")]
    param_dtype: String,
    /// With 16-bit params: keep f32 master weights (the params are written
    /// from them, rounded to nearest).
    #[arg(long, conflicts_with = "stochastic_rounding")]
    master_weights: bool,
    /// With 16-bit params: round each step's result stochastically (seeded
    /// by --seed) instead of to nearest.
    #[arg(long)]
    stochastic_rounding: bool,
    /// Where to write the checkpoint (after every epoch and at the end).
    #[arg(long, default_value = "digits.safetensors")]
    checkpoint: PathBuf,
    /// Continue from a checkpoint written by an earlier run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// The data set (gzip'd CSV).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"))]
    data: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), model::BoxError> {
    if args.batch_size == 0 || args.epochs == 0 {
        return Err("--batch-size and --epochs must be at least 1".into());
    }
    let data = model::load_digits(&args.data)?;
    let pool = model::open_devices(args.devices)?;
    let info = pool.gpus()[0].info();
    println!(
        "adapter: {} ({:?}, {:?}) x{} device(s)",
        info.name,
        info.backend,
        info.device_type,
        pool.len()
    );
    let param_update = if args.master_weights {
        wgpu_optim::ParamUpdate::MasterWeights
    } else if args.stochastic_rounding {
        wgpu_optim::ParamUpdate::StochasticRounding
    } else {
        wgpu_optim::ParamUpdate::RoundNearest
    };
    println!(
        "data: {} samples; optimizer: {} ({} states, {} params and grads, {} updates); seed {}",
        data.len(),
        args.optimizer,
        args.state_dtype,
        args.param_dtype,
        param_update.as_str(),
        args.seed
    );
    let cfg = model::TrainConfig {
        optimizer: args.optimizer,
        epochs: args.epochs,
        seed: args.seed,
        batch: args.batch_size,
        lr: args.lr,
        patience: args.patience,
        devices: args.devices,
        accumulate: args.accumulate,
        state_dtype: wgpu_optim::optim::StateDtype::parse(&args.state_dtype)?,
        param_dtype: wgpu_optim::ParamDtype::parse("--param-dtype", &args.param_dtype)?,
        param_update,
        shard_state: args.shard_optimizer_state,
        checkpoint: Some(args.checkpoint.clone()),
        resume: args.resume,
        ..Default::default()
    };
    let bar = ProgressBar::new(cfg.epochs);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg}").expect("valid template"),
    );
    let start = std::time::Instant::now();
    let summary = model::train(&pool, &data, &cfg, |e| {
        bar.set_position(e.epoch + 1);
        bar.set_message(format!(
            "loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} | lr {:.2e}",
            e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.lr
        ));
    })?;
    bar.finish();
    println!(
        "held-out accuracy {:.2}% (loss {:.4}) after {} epochs in {:.1} s; best epoch {}; stopped because: {}",
        summary.test_acc * 100.0,
        summary.test_loss,
        summary.epochs_run,
        start.elapsed().as_secs_f64(),
        summary.best_epoch.map_or("-".into(), |e| e.to_string()),
        summary.stop_reason
    );
    println!("checkpoint: {}", args.checkpoint.display());
    Ok(())
}
