//! Test helpers (compiled only for the crate's unit tests): naga parses and
//! validates assembled kernels with no GPU, and compares WGSL struct layouts
//! with their Rust twins, so each uniform row's layout test sits beside it.

use std::collections::BTreeMap;

use naga::valid::{Capabilities, ValidationFlags, Validator};

/// The common structs of every kernel.
pub(crate) const COMMON: &str = include_str!("common.wgsl");

/// Member name -> offset, and the size, of a Rust struct.
macro_rules! rust_struct {
    ($t:ty { $($f:ident),* $(,)? }) => {{
        let mut m = std::collections::BTreeMap::new();
        $( m.insert(stringify!($f).to_string(), std::mem::offset_of!($t, $f) as u32); )*
        (m, std::mem::size_of::<$t>() as u32)
    }};
}
pub(crate) use rust_struct;

/// A layout: member name -> offset, and the size.
pub(crate) type Layout = (BTreeMap<String, u32>, u32);

/// Parses and validates `src` (overrides unresolved), with the capabilities
/// the engine requests: none.
pub(crate) fn parse(name: &str, src: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    (module, info)
}

/// The layout of struct `name` as naga lays it out.
pub(crate) fn wgsl_struct(module: &naga::Module, name: &str) -> Layout {
    for (_, ty) in module.types.iter() {
        if ty.name.as_deref() == Some(name)
            && let naga::TypeInner::Struct { members, span } = &ty.inner
        {
            let m = members
                .iter()
                .map(|m| (m.name.clone().expect("named member"), m.offset))
                .collect();
            return (m, *span);
        }
    }
    panic!("struct {name} not found");
}

/// A struct of `gpu/common.wgsl` has its Rust twin's layout.
pub(crate) fn assert_common_struct(name: &str, rust: Layout) {
    let (module, _) = parse("gpu/common.wgsl", COMMON);
    assert_eq!(wgsl_struct(&module, name), rust, "common.wgsl: {name}");
}

/// An optimizer kernel's `Row` has its Rust twin's layout, the uniform table
/// holds `MAX_GROUPS` rows, and its stride is a multiple of 16.
/// The whole f32-state kernel of optimizer config `a` (source, roles, entry).
pub(crate) fn kernel_source(a: &dyn crate::optim::Algo) -> String {
    a.kernel().assemble(
        a.passes(),
        crate::optim::state::StateDtype::F32,
        Default::default(),
    )
}

pub(crate) fn assert_row_matches(source: &str, rust: Layout) {
    let (module, _) = parse("kernel", source);
    assert_eq!(wgsl_struct(&module, "Row"), rust, "Row");
    assert_eq!(rust.1 % 16, 0, "uniform array stride is a multiple of 16");
    let table = module
        .global_variables
        .iter()
        .find(|(_, v)| v.name.as_deref() == Some("groups"))
        .map(|(_, v)| v.ty)
        .expect("a `groups` table");
    match module.types[table].inner {
        naga::TypeInner::Array {
            size: naga::ArraySize::Constant(n),
            ..
        } => assert_eq!(n.get() as usize, crate::optim::MAX_GROUPS, "table length"),
        ref other => panic!("groups is {other:?}"),
    }
}

/// Every combination of the module's boolean overrides, resolved by naga
/// as a pipeline would resolve them and validated; returns how many.
/// `host` are the constants the engine passes: each must exist.
pub(crate) fn validate_every_variant(name: &str, source: &str, host: &[&str]) -> usize {
    let (module, info) = parse(name, source);
    let names: Vec<String> = module
        .overrides
        .iter()
        .map(|(_, o)| o.name.clone().expect("named override"))
        .collect();
    for h in host {
        assert!(
            names.iter().any(|n| n == h),
            "{name}: the host passes `{h}`, which it lacks"
        );
    }
    let n = names.len();
    for bits in 0..(1u32 << n) {
        let constants: naga::back::PipelineConstants = names
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), ((bits >> i) & 1) as f64))
            .collect();
        naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((naga::ShaderStage::Compute, "main")),
            &constants,
        )
        .unwrap_or_else(|e| panic!("{name} with {constants:?}: {e}"));
    }
    1 << n
}
