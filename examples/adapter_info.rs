//! Prints every adapter wgpu finds (as `scripts/device-check` step 1 does):
//! name, backend, driver and the limits the engine depends on. Exits 1 when
//! there is none.
//!
//! `cargo run --example adapter_info` (honours `WGPU_BACKEND`).

fn main() {
    let all = wgpu_optim::Gpu::all(wgpu::Backends::all());
    if all.is_empty() {
        eprintln!("no adapter found (on Linux without a GPU: apt-get install mesa-vulkan-drivers)");
        std::process::exit(1);
    }
    let mut ok = 0;
    for g in all {
        match g {
            Ok(gpu) => {
                let i = gpu.info();
                let l = gpu.limits();
                println!(
                    "adapter: {} | backend {:?} | type {:?} | driver {} {}",
                    i.name, i.backend, i.device_type, i.driver, i.driver_info
                );
                println!(
                    "  max_buffer_size {} | max_storage_buffer_binding_size {} | \
                     max_compute_workgroups_per_dimension {} | max_storage_buffers_per_shader_stage {} | \
                     timestamps {}",
                    l.max_buffer_size,
                    l.max_storage_buffer_binding_size,
                    l.max_compute_workgroups_per_dimension,
                    l.max_storage_buffers_per_shader_stage,
                    gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY)
                );
                ok += 1;
            }
            Err(e) => println!("adapter that could not be opened: {e}"),
        }
    }
    if ok == 0 {
        std::process::exit(1);
    }
}
