//! Every WGSL file parses and validates with naga (no GPU needed), and each
//! uniform / storage struct has the size and member offsets of its Rust twin.

use std::collections::BTreeMap;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use wgpu_optim::clip::{ControlHeader, GroupOut, StatsParams};
use wgpu_optim::optim::{
    AdadeltaGroup, AdagradGroup, AdamGroup, Block, MAX_GROUPS, RmsPropGroup, SgdGroup,
};

fn shader_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders")
}

fn parse(name: &str) -> naga::Module {
    let src = std::fs::read_to_string(shader_dir().join(name)).unwrap();
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
    // The engine requests no optional features: validate with none.
    Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
    module
}

#[test]
fn every_shader_parses_and_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(shader_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let module = parse(&name);
            assert!(
                module.entry_points.iter().any(|e| e.name == "main"),
                "{name} has a `main` entry point"
            );
            let src = std::fs::read_to_string(&path).unwrap();
            assert!(
                src.starts_with("// "),
                "{name} starts with its header comment"
            );
            n += 1;
        }
    }
    assert!(n >= 6, "found {n} shaders");
}

/// Member name -> offset, and the struct's size, as naga lays it out.
fn wgsl_struct(module: &naga::Module, name: &str) -> (BTreeMap<String, u32>, u32) {
    for (_, ty) in module.types.iter() {
        if ty.name.as_deref() == Some(name)
            && let naga::TypeInner::Struct { members, span } = &ty.inner
        {
            let m = members
                .iter()
                .map(|m| (m.name.clone().unwrap(), m.offset))
                .collect();
            return (m, *span);
        }
    }
    panic!("struct {name} not found");
}

macro_rules! rust_struct {
    ($t:ty { $($f:ident),* $(,)? }) => {{
        let mut m = BTreeMap::new();
        $( m.insert(stringify!($f).to_string(), std::mem::offset_of!($t, $f) as u32); )*
        (m, std::mem::size_of::<$t>() as u32)
    }};
}

/// The uniform table is `array<XGroup, 256>`: check its length too.
fn table_len(module: &naga::Module) -> u32 {
    for (_, var) in module.global_variables.iter() {
        if var.space == naga::AddressSpace::Uniform
            && let naga::TypeInner::Array {
                size: naga::ArraySize::Constant(n),
                ..
            } = module.types[var.ty].inner
        {
            return n.get();
        }
    }
    panic!("no uniform array");
}

#[test]
fn uniform_structs_match_rust() {
    let cases = [
        (
            "adam.wgsl",
            "AdamGroup",
            rust_struct!(AdamGroup {
                beta1,
                one_minus_beta1,
                beta2,
                one_minus_beta2,
                eps,
                weight_decay,
                l1,
                step_size,
                bias_correction2_sqrt,
                decay_factor,
                grad_scale,
                lr,
                t,
                _pad0,
                _pad1,
                _pad2
            }),
        ),
        (
            "sgd.wgsl",
            "SgdGroup",
            rust_struct!(SgdGroup {
                lr,
                momentum,
                one_minus_dampening,
                weight_decay,
                l1,
                grad_scale,
                first_step,
                t
            }),
        ),
        (
            "adagrad.wgsl",
            "AdagradGroup",
            rust_struct!(AdagradGroup {
                clr,
                weight_decay,
                l1,
                eps,
                grad_scale,
                lr,
                lr_decay,
                t
            }),
        ),
        (
            "adadelta.wgsl",
            "AdadeltaGroup",
            rust_struct!(AdadeltaGroup {
                lr,
                rho,
                one_minus_rho,
                eps,
                weight_decay,
                l1,
                grad_scale,
                _pad
            }),
        ),
        (
            "rmsprop.wgsl",
            "RmsPropGroup",
            rust_struct!(RmsPropGroup {
                lr,
                alpha,
                one_minus_alpha,
                eps,
                weight_decay,
                l1,
                momentum,
                grad_scale
            }),
        ),
    ];
    let block = rust_struct!(Block {
        start,
        len,
        group,
        index
    });
    let group_out = rust_struct!(GroupOut {
        pre,
        coef,
        norm,
        clip_value
    });
    let (mut header, _) = rust_struct!(ControlHeader {
        found_inf,
        skipped,
        scale,
        growth_tracker
    });
    // The runtime-sized array of GroupOut follows the 16-byte header.
    header.insert("groups".into(), std::mem::size_of::<ControlHeader>() as u32);
    for file in [
        "adam.wgsl",
        "sgd.wgsl",
        "adagrad.wgsl",
        "adadelta.wgsl",
        "rmsprop.wgsl",
        "grad_stats.wgsl",
        "grad_finalize.wgsl",
    ] {
        let module = parse(file);
        assert_eq!(
            wgsl_struct(&module, "GroupOut"),
            group_out,
            "{file}: GroupOut"
        );
        assert_eq!(wgsl_struct(&module, "Control").0, header, "{file}: Control");
    }
    let stats = rust_struct!(StatsParams {
        host_scale,
        clip_value,
        max_norm,
        norm_type,
        n_partials,
        n_groups,
        per_group,
        dynamic_scale,
        growth_factor,
        backoff_factor,
        growth_interval,
        skip_nonfinite
    });
    for file in ["grad_stats.wgsl", "grad_finalize.wgsl"] {
        assert_eq!(
            wgsl_struct(&parse(file), "StatsParams"),
            stats,
            "{file}: StatsParams"
        );
    }
    for (file, name, rust) in cases {
        let module = parse(file);
        assert_eq!(wgsl_struct(&module, name), rust, "{file}: {name}");
        assert_eq!(wgsl_struct(&module, "Block"), block, "{file}: Block");
        assert_eq!(
            table_len(&module) as usize,
            MAX_GROUPS,
            "{file}: table length"
        );
        assert_eq!(
            rust.1 % 16,
            0,
            "{name}: uniform array stride is a multiple of 16"
        );
    }
}
