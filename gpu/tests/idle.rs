//! Idle engines sleep: with every device idle, the process uses (almost) no CPU. In its
//! own test binary so that no other test's threads share the process CPU count.

use clockwork_core::model::resnet18;
use clockwork_core::{ActionId, GpuId, ModelId, Window, WorkerStatus};
use clockwork_gpu::{Backend, DeviceAction, DeviceConfig, DeviceOp, DeviceSet, NoiseModel};
use nix::sys::resource::{getrusage, UsageWho};
use std::time::Duration;

fn cpu_time() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    tv(u.user_time()) + tv(u.system_time())
}

#[test]
fn idle_engines_burn_no_cpu() {
    let mut config = DeviceConfig::emulated(100);
    config.backend = Backend::Emulated {
        devices: 100,
        engine_threads: 2,
        noise: NoiseModel::None,
        seed: 0,
    };
    let (mut set, mut done) = DeviceSet::start(config).expect("start");
    set.register_model(ModelId(1), resnet18())
        .expect("register");
    for g in 0..100 {
        set.submit(DeviceAction {
            action: ActionId(u64::from(g)),
            gpu: GpuId(g),
            window: Window::ANY,
            op: DeviceOp::Load { model: ModelId(1) },
        })
        .expect("submit");
    }
    for _ in 0..100 {
        let c = done
            .recv_timeout(Duration::from_secs(20))
            .expect("completion");
        assert_eq!(c.status, WorkerStatus::Success);
    }
    let before = cpu_time();
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_time() - before;
    println!("CPU used by 100 idle emulated devices on 2 engine threads over 500 ms: {used:?}");
    // Spinning engines would use ~1 s (two threads); sleeping ones use ~0.
    assert!(
        used < Duration::from_millis(100),
        "idle engines used {used:?}"
    );
}
