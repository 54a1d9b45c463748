//! Reconnection: a new connection to the same socket, accepted only if the server
//! behind it is the device first found (IDs, BAR regions), then given what the old one
//! had (DMA maps, interrupt fds, COMMAND) and the mapped areas remapped from its fds.

use vfio_user_proto as vu;

use super::super::areas::{map_regions, same_shape};
use super::super::mapping::Area;
use super::Conn;

/// The device as first found: a reconnected server must be the same device.
pub(crate) struct Shape {
    /// Vendor and device ID (config space bytes 0-3).
    pub(crate) id: u32,
    /// Region info of BARs 0-5.
    pub(crate) bars: Vec<vu::RegionInfo>,
    /// Which BARs the function has.
    pub(crate) present: [bool; 6],
}

impl Conn {
    /// Takes a new connection [`dial`](super::dial) made (without this lock, so that a
    /// server that accepts and then says nothing holds up no vCPU) and replays the setup
    /// on it; `dialed` is `None` when nothing accepted.
    pub(crate) fn reconnect_with(
        &mut self,
        dialed: Option<vu::Result<(vu::Channel, vu::Capabilities)>>,
    ) -> bool {
        if self.chan.is_some() {
            return true;
        }
        if self.retired {
            return false;
        }
        match dialed {
            None => return false,
            Some(Err(e)) => {
                self.drop_connection(&format!("reconnect: {e}"));
                return false;
            }
            Some(Ok((chan, caps))) => self.install(chan, caps),
        }
        let Some(areas) = self.same_device() else {
            return false;
        };
        let dma = self.replay.dma.clone();
        if let Some(d) = &dma {
            if !self.dma_map(d) {
                return false;
            }
        }
        let irqs: Vec<_> = self.replay.irqs.clone();
        for (index, fds) in &irqs {
            if !self.set_irq_fds(*index, fds) && !self.connected() {
                return false;
            }
        }
        if let Some(c) = self.replay.command {
            self.write_command(c);
        }
        if self.connected() {
            self.areas.resume_with(areas);
            self.metrics.set_connected(true);
            self.metrics.reconnects.increment(1);
            log::info!("{}: vfio-user server reconnected", self.name);
        }
        self.connected()
    }

    /// Checks that the newly connected server offers the device first found (IDs, BAR
    /// regions) and returns its mmap-able areas; else drops the connection (the device
    /// then stays away until a server that is the same device answers).
    fn same_device(&mut self) -> Option<Vec<Area>> {
        let Some(shape) = self.replay.shape.take() else {
            return Some(Vec::new());
        };
        let checked = self.check_shape(&shape);
        self.replay.shape = Some(shape);
        match checked {
            Ok(areas) => Some(areas),
            Err(why) => {
                if self.connected() {
                    self.drop_connection(&format!("the new server is another device: {why}"));
                }
                None
            }
        }
    }

    fn check_shape(&mut self, shape: &Shape) -> std::result::Result<Vec<Area>, String> {
        let mut id = [0u8; 4];
        if !self.region_read(vu::REGION_CONFIG, 0, &mut id) {
            return Err("its config space cannot be read".into());
        }
        let id = u32::from_le_bytes(id);
        if id != shape.id {
            return Err(format!("IDs {:08x}, not {:08x}", id, shape.id));
        }
        let mut regions = Vec::new();
        for old in &shape.bars {
            let (new, fd) = match super::super::region_info(self, old.index) {
                Some(Ok(r)) => r,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("it went away".into()),
            };
            if !same_shape(old, &new) {
                return Err(format!(
                    "region {} is {:#x} bytes, flags {:#x} (was {:#x}, {:#x})",
                    old.index, new.size, new.flags, old.size, old.flags
                ));
            }
            regions.push((new, fd));
        }
        Ok(if self.areas.maps() {
            map_regions(&self.name, regions, &shape.present)
        } else {
            Vec::new()
        })
    }
}
