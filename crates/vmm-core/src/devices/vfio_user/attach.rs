//! Adding a vfio-user device to a built VM before it runs (the CLI's and benches' way
//! to put a device at a socket known only at run time).
//!
//! It wires the device exactly as `[[device]] kind = "vfio-user"` does (the same
//! [`VfioUserSpec::connect`]), then redoes what the PCI build does after its devices:
//! the firmware BAR assignment (which places every function exactly as if the device had
//! been configured from the start) and the MP table's INTx entries.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pci_emu::{Bdf, PciFunction};

use crate::devices::kinds::vfio_user::{VfioUserSpec, VmSide};
use crate::devices::vfio_user::client::InterruptPath;
use crate::devices::wiring::VmHooks;
use crate::pci;
use crate::vm::Vm;
use crate::{Error, Result};

/// Connects to the server at `socket` and puts the device at `bdf` (or the next free
/// slot) on `vm`'s PCI bus. `reply_timeout` bounds each exchange with the server.
pub fn attach(
    vm: &Vm,
    socket: &Path,
    bdf: Option<Bdf>,
    connect_timeout: Duration,
    reply_timeout: Duration,
) -> Result<Bdf> {
    let platform = &vm.pci;
    let bdf = match bdf {
        Some(b) => b,
        None => platform.free_slot(&[]).ok_or_else(|| Error::Device {
            device: "vfio-user".into(),
            detail: "no free PCI slot on bus 0".into(),
        })?,
    };
    let hooks = match platform.vm_hooks() {
        Some(h) => h.clone(),
        None => VmHooks::kvm(&vm.vm_fd),
    };
    let spec = VfioUserSpec {
        socket: socket.to_path_buf(),
        connect_timeout,
        reply_timeout,
        interrupts: InterruptPath::Direct,
    };
    let side = VmSide {
        name: &vm.config.name,
        router: platform.router(),
        ram: &vm.ram,
        hooks: &hooks,
        control: &vm.control,
    };
    let dev = spec.connect(bdf, side, None)?;
    let f: Arc<Mutex<dyn PciFunction>> = Arc::new(Mutex::new(dev));
    platform.add_function(bdf, f)?;
    pci::assign_resources(platform, vm.config.ecam_base)?;
    platform.publish_info();
    pci::write_intx_mptable(platform, &vm.ram.memory, vm.config.vcpus)?;
    Ok(bdf)
}
