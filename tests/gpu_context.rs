//! The device context: an application's own device and queue, limits
//! checked with a clear error, and every adapter listed.

mod common;

use wgpu_optim::optim::{AdamConfig, OptimizerSpec};
use wgpu_optim::{ErrorKind, Gpu, Optimizer, ParamLayout, ParamSet};

fn adapter() -> wgpu::Adapter {
    let instance = wgpu_optim::gpu::instance_from_env();
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("the GPU tests need an adapter (install mesa-vulkan-drivers without a GPU)")
}

fn device(adapter: &wgpu::Adapter, limits: wgpu::Limits) -> (wgpu::Device, wgpu::Queue) {
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("application device"),
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap()
}

#[test]
fn an_applications_own_device_runs_the_engine() {
    let adapter = adapter();
    let (device, queue) = device(&adapter, adapter.limits());
    let gpu = Gpu::from_device(device.clone(), queue).unwrap();
    assert_eq!(gpu.info().name, adapter.get_info().name);
    let layout = ParamLayout::new(&[("w", &[3][..])]).unwrap();
    let mut params = ParamSet::new(&gpu, &layout).unwrap();
    params.write_grad(&gpu, "w", &[1.0, -1.0, 0.0]).unwrap();
    let mut opt =
        Optimizer::new(&gpu, &OptimizerSpec::adam(AdamConfig::default()), &params).unwrap();
    opt.step(&gpu, &mut params).unwrap();
    // Adam's first step moves each parameter by lr * sign(g) (up to eps).
    let w = params.read(&gpu, "w").unwrap();
    assert!(
        (w[0] + 1e-3).abs() < 1e-6 && (w[1] - 1e-3).abs() < 1e-6 && w[2] == 0.0,
        "{w:?}"
    );
    // The buffers are the application's: usable with its own device.
    assert_eq!(params.param_buffers()[0].size(), 64 * 4);
}

#[test]
fn a_device_with_too_few_storage_buffers_is_refused_by_name() {
    let adapter = adapter();
    // WebGPU's downlevel defaults allow 4 storage buffers per stage; LAMB
    // (two states and the trust passes' two buffers) needs 8.
    let (device, queue) = device(&adapter, wgpu::Limits::downlevel_defaults());
    let e = Gpu::from_device(device, queue).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    let msg = e.to_string();
    assert!(
        msg.contains("max_storage_buffers_per_shader_stage")
            && msg.contains("8 needed")
            && msg.contains("offers 4"),
        "{msg}"
    );
}

#[test]
fn every_adapter_is_listed_and_opened() {
    let all = Gpu::all(wgpu::Backends::VULKAN);
    assert!(
        !all.is_empty(),
        "at least one Vulkan adapter (lavapipe on CI)"
    );
    for g in all {
        let g = g.unwrap();
        assert!(g.max_binding_elems() >= 64);
        assert!(g.limits().max_storage_buffers_per_shader_stage >= 7);
    }
}

/// Issue 15: on a destroyed device `step()` and `write()` returned Ok (and
/// the step count grew) and `read` spoke of submission indices. Every call
/// now reports the loss, with "device lost" in the message.
#[test]
fn every_call_on_a_destroyed_device_reports_device_lost() {
    use wgpu_optim::optim::{OptimizerSpec, SgdConfig};
    use wgpu_optim::{ErrorKind, Optimizer, ParamLayout, ParamSet};
    let gpu = common::new_gpu();
    let layout = ParamLayout::new(&[("w", &[8][..])]).unwrap();
    let mut params = ParamSet::new(&gpu, &layout).unwrap();
    let mut opt = Optimizer::new(&gpu, &OptimizerSpec::sgd(SgdConfig::default()), &params).unwrap();
    gpu.device().destroy();
    let errors = [
        opt.step(&gpu, &mut params).unwrap_err(),
        params.write(&gpu, "w", &[0.0; 8]).unwrap_err(),
        params.write_grad(&gpu, "w", &[0.0; 8]).unwrap_err(),
        params.read(&gpu, "w").unwrap_err(),
        gpu.synchronize().unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.kind(), ErrorKind::DeviceLost, "{e}");
        assert!(e.to_string().contains("device lost"), "{e}");
    }
    assert_eq!(opt.step_count(), 0, "a failed step does not count");
}
