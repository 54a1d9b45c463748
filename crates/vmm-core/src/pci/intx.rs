//! INTx in the firmware tables: the MP table gets a PCI interrupt entry for every
//! function on bus 0 whose pin is wired to an I/O APIC PCI input (its interrupt-line
//! register, set by the device's build, names one of inputs 16-23).

use vm_memory::GuestMemoryMmap;

use super::PciPlatform;
use crate::arch;
use crate::Result;

/// Rewrites the MP table with the INTx wiring of `platform`'s functions (without any,
/// the table is the plain one).
pub fn write_intx_mptable(
    platform: &PciPlatform,
    memory: &GuestMemoryMmap,
    vcpus: u32,
) -> Result<()> {
    let mut pins = Vec::new();
    let bus = platform.bus();
    for b in bus.bdfs() {
        let Some(f) = bus.function(b) else { continue };
        let mut r = [0u8; 2];
        f.lock()
            .unwrap_or_else(|e| e.into_inner())
            .config_read(0x3c, &mut r);
        let (line, pin) = (r[0], r[1]);
        if b.bus == 0 && (1..=4).contains(&pin) && (16..24).contains(&line) {
            pins.push(arch::PciIntx {
                device: b.device,
                pin,
                gsi: line,
            });
        }
    }
    drop(bus);
    if pins.is_empty() {
        return Ok(());
    }
    arch::write_mptable_with_pci(memory, vcpus, &pins)?;
    Ok(())
}
