//! Command-line arguments and the checks made on them before anything runs.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// The largest tensor the harness accepts on any adapter, in elements
/// (2^30: 4 GiB per f32 role, over 20 GiB with AMSGrad's states). Adapters
/// may allow less: see [`max_elems_for`].
pub const HARNESS_MAX_ELEMS: u64 = 1 << 30;

/// Benchmark wgpu-optim's fused optimizer steps on every GPU adapter wgpu can
/// see, next to a same-device copy kernel moving the same bytes (the
/// streaming roofline).
#[derive(Debug, Parser)]
#[command(name = "wgpu-optim-bench", version)]
pub struct Args {
    /// Which wgpu backend(s) to enumerate adapters on.
    #[arg(long, value_enum, default_value_t = BackendArg::All)]
    pub backend: BackendArg,

    /// Only adapters whose name contains SUBSTRING (case-insensitive).
    #[arg(long, value_name = "SUBSTRING")]
    pub adapter: Option<String>,

    /// A short run: sizes 2^16 and 2^18 (unless --min-size / --max-size say
    /// otherwise) and 3 repetitions.
    #[arg(long)]
    pub quick: bool,

    /// Smallest single-tensor size in elements (a number or `2^k`).
    #[arg(long, value_name = "ELEMS", value_parser = parse_size, default_value = "2^16")]
    pub min_size: u64,

    /// Largest single-tensor size in elements (a number or `2^k`); sizes run
    /// from --min-size up by factors of 4. Default 2^24 (2^18 with --quick).
    #[arg(long, value_name = "ELEMS", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Also the big rows, last: every optimizer on a GPT-2-XL-like mix of
    /// about 1.56 B parameters, and one AdamW step on about 7 B parameters
    /// where the adapter's memory allows (params, grads and two f32 states:
    /// 112 GB). With --quick both are scaled down (a 2-layer mix, 2^18
    /// parameters for "7 B") so the code path runs anywhere.
    #[arg(long)]
    pub big: bool,

    /// Timed repetitions per case after one warm-up (default 10, 3 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: Option<u32>,

    /// How to time: `auto` uses GPU timestamps where the adapter offers
    /// them and wall clock elsewhere; `wall` always uses wall clock.
    #[arg(long, value_enum, default_value_t = TimingArg::Auto)]
    pub timing: TimingArg,

    /// Write every measurement as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write a chart of params/s against tensor size as SVG to PATH.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,

    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// A `--backend` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Vulkan.
    Vulkan,
    /// Metal.
    Metal,
    /// Direct3D 12.
    Dx12,
    /// OpenGL / GLES (EGL on Linux).
    Gl,
    /// All of the above.
    All,
}

impl BackendArg {
    /// The wgpu backends this value selects.
    pub fn backends(self) -> wgpu::Backends {
        match self {
            BackendArg::Vulkan => wgpu::Backends::VULKAN,
            BackendArg::Metal => wgpu::Backends::METAL,
            BackendArg::Dx12 => wgpu::Backends::DX12,
            BackendArg::Gl => wgpu::Backends::GL,
            BackendArg::All => {
                wgpu::Backends::VULKAN
                    | wgpu::Backends::METAL
                    | wgpu::Backends::DX12
                    | wgpu::Backends::GL
            }
        }
    }
}

/// A `--timing` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimingArg {
    /// GPU timestamps where available, wall clock elsewhere.
    Auto,
    /// Wall clock everywhere.
    Wall,
}

/// Parses `65536` or `2^16`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let n = if let Some((base, exp)) = t.split_once('^') {
        let base: u64 = base
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: expected a number or 2^k"))?;
        let exp: u32 = exp
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: the exponent must be a whole number"))?;
        base.checked_pow(exp)
            .ok_or_else(|| format!("`{s}` does not fit in 64 bits"))?
    } else {
        t.replace('_', "")
            .parse()
            .map_err(|_| format!("`{s}`: expected a number of elements or 2^k"))?
    };
    if n == 0 {
        return Err("a size must be at least 1 element".into());
    }
    Ok(n)
}

/// The settled plan: sizes and repetitions.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Single-tensor sizes in elements, ascending.
    pub sizes: Vec<u64>,
    /// The requested largest size (the sweep may stop below it).
    pub max_size: u64,
    /// Timed repetitions per case.
    pub reps: usize,
    /// The timing choice.
    pub timing: TimingArg,
    /// `--quick`: a short run (Muon then times one repetition of the mix
    /// fused and of the 2^16 matrix only: on lavapipe, the CPU, one step of
    /// its Newton-Schulz products over the mix takes about 10 s).
    pub quick: bool,
    /// `--big`: the ~1.5 B-parameter mix and the 7 B AdamW step.
    pub big: bool,
}

impl Args {
    /// The sizes and repetitions these arguments ask for.
    ///
    /// # Errors
    /// A message when `--min-size` exceeds `--max-size` or a size exceeds
    /// [`HARNESS_MAX_ELEMS`].
    pub fn plan(&self) -> Result<Plan, String> {
        let max = self
            .max_size
            .unwrap_or(if self.quick { 1 << 18 } else { 1 << 24 });
        if max > HARNESS_MAX_ELEMS {
            return Err(format!(
                "--max-size {} is larger than the harness allows ({} = 2^30 elements); \
                 pass --max-size 2^30 or less",
                fmt_size(max),
                HARNESS_MAX_ELEMS
            ));
        }
        if self.min_size > max {
            return Err(format!(
                "--min-size {} is larger than --max-size {}",
                fmt_size(self.min_size),
                fmt_size(max)
            ));
        }
        let mut sizes = Vec::new();
        let mut n = self.min_size;
        while n <= max {
            sizes.push(n);
            n = match n.checked_mul(4) {
                Some(m) => m,
                None => break,
            };
        }
        let reps = self.reps.unwrap_or(if self.quick { 3 } else { 10 }) as usize;
        Ok(Plan {
            sizes,
            max_size: max,
            reps,
            timing: self.timing,
            quick: self.quick,
            big: self.big,
        })
    }
}

/// The largest single tensor, in f32 elements, that the harness runs on an
/// adapter with these limits: it must fit in one wgpu buffer
/// (`max_buffer_size`), and in [`HARNESS_MAX_ELEMS`].
pub fn max_elems_for(limits: &wgpu::Limits) -> u64 {
    (limits.max_buffer_size / 4).min(HARNESS_MAX_ELEMS)
}

/// `2^k` for powers of two, the plain number otherwise.
pub fn fmt_size(n: u64) -> String {
    if n.is_power_of_two() && n >= 16 {
        format!("2^{}", n.trailing_zeros())
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_numbers_or_powers() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("2^16"), Ok(65536));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("2^64").is_err());
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn quick_plan_has_two_sizes_and_three_reps() {
        let a = Args::parse_from(["x", "--quick"]);
        let p = a.plan().unwrap();
        assert_eq!(p.sizes, vec![1 << 16, 1 << 18]);
        assert_eq!(p.reps, 3);
        let a = Args::parse_from(["x"]);
        assert_eq!(a.plan().unwrap().sizes.len(), 5);
    }

    #[test]
    fn inverted_or_huge_sizes_are_rejected() {
        let a = Args::parse_from(["x", "--min-size", "2^20", "--max-size", "2^18"]);
        assert!(a.plan().unwrap_err().contains("--min-size"));
        let a = Args::parse_from(["x", "--max-size", "2^40"]);
        assert!(a.plan().unwrap_err().contains("2^40"));
    }
}
