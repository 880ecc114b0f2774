//! hil-sim: the hardware-in-the-loop simulator for linectl. It owns the simulated
//! devices (PLC, printers, camera, site server), the rendering of printed codes into
//! camera frames with injected defects, and the scenario runner. It reuses the device
//! codecs of `linectl-drivers` for the device side, so both ends speak the same bytes.

pub mod aggregation;
pub mod defects;
pub mod line;
pub mod render;
pub mod report;
pub mod site;
