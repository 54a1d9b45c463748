use super::*;
use kvm_ioctls::Kvm;

fn kvm(name: &str) -> Option<Kvm> {
    if !std::path::Path::new("/dev/kvm").exists() {
        println!("SKIP (no /dev/kvm): {name}");
        return None;
    }
    Some(Kvm::new().expect("open /dev/kvm"))
}

fn render_sample(stats: &mut KvmStats) -> String {
    let (exporter, recorder) = crate::Exporter::unregistered(None).unwrap();
    metrics::with_local_recorder(&recorder, || stats.sample()).unwrap();
    // Handles stay bound to the recorder they were registered with.
    stats.sample().unwrap();
    exporter.render()
}

#[test]
fn vcpu_stats_from_real_kvm() {
    let Some(kvm) = kvm("vcpu_stats_from_real_kvm") else {
        return;
    };
    let vm = kvm.create_vm().unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let mut stats = KvmStats::new("t", StatsScope::Vcpu(0), get_stats_fd(&vcpu).unwrap()).unwrap();
    let names: Vec<&str> = stats.metric_names().collect();
    for want in [
        "kvmbus_kvm_vcpu_exits_total",
        "kvmbus_kvm_vcpu_halt_exits_total",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let text = render_sample(&mut stats);
    assert!(
        text.contains("kvmbus_kvm_vcpu_exits_total{vm=\"t\",vcpu=\"0\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE kvmbus_kvm_vcpu_io_exits_total counter"),
        "{text}"
    );
    assert!(
        text.contains("kvmbus_kvm_vcpu_halt_wait_seconds{vm=\"t\",vcpu=\"0\"}"),
        "{text}"
    );
    assert!(!text.contains("_hist"), "histograms are skipped");
}

#[test]
fn vm_stats_from_real_kvm() {
    let Some(kvm) = kvm("vm_stats_from_real_kvm") else {
        return;
    };
    let vm = kvm.create_vm().unwrap();
    let mut stats = KvmStats::new("t", StatsScope::Vm, get_stats_fd(&vm).unwrap()).unwrap();
    assert!(stats
        .metric_names()
        .any(|n| n == "kvmbus_kvm_vm_remote_tlb_flush_total"));
    let text = render_sample(&mut stats);
    assert!(
        text.contains("kvmbus_kvm_vm_remote_tlb_flush_total{vm=\"t\"}"),
        "{text}"
    );
}

#[test]
fn stats_fd_of_a_non_kvm_fd_is_an_error() {
    let f = std::fs::File::open("/dev/null").unwrap();
    assert!(matches!(get_stats_fd(&f), Err(Error::StatsFd(_))));
}

#[test]
fn sampler_stops_on_signal() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let h = spawn_stats_sampler(Vec::new(), std::time::Duration::from_secs(60), rx, || {});
    tx.send(()).unwrap();
    h.join().unwrap();
}
