//! How the pipeline gets its devices: one factory per device, called by the device's
//! thread to connect and again to reconnect after a loss, so the line survives a
//! dropped cable. It owns the profile → driver mapping; the protocols are the
//! drivers'.

use std::time::Duration;

use linectl_drivers::{Error, FrameSource, Plc, Printer};

use crate::profile::Profile;

/// Connects (or reconnects) one device.
pub type DeviceFactory<T> = Box<dyn FnMut() -> Result<Box<T>, Error> + Send>;

/// The line's three devices, as factories.
pub struct Devices {
    /// The PLC.
    pub plc: DeviceFactory<dyn Plc>,
    /// The coding printer.
    pub printer: DeviceFactory<dyn Printer>,
    /// The camera.
    pub camera: DeviceFactory<dyn FrameSource>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices").finish_non_exhaustive()
    }
}

impl Devices {
    /// The devices a profile names, through the drivers' factories.
    pub fn from_profile(p: &Profile) -> Devices {
        let plc = p.plc.clone();
        let printer = p.printer.clone();
        let camera = p.camera.clone();
        Devices {
            plc: Box::new(move || {
                linectl_drivers::factory::connect_plc_with(
                    plc.kind.id(),
                    &plc.address,
                    plc.baud,
                    plc.modbus_config(),
                )
            }),
            printer: Box::new(move || {
                linectl_drivers::connect_printer(
                    printer.kind.id(),
                    &printer.address,
                    printer.baud,
                    Duration::from_millis(printer.timeout_ms),
                )
            }),
            camera: Box::new(move || {
                linectl_drivers::connect_frame_source(
                    camera.kind.id(),
                    &camera.address,
                    Duration::from_millis(camera.timeout_ms),
                )
            }),
        }
    }
}
