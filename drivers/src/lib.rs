//! linectl-drivers: device traits (`Printer`, `Plc`, `FrameSource`) and their protocol
//! codecs and transports. Skeleton; the drivers issue fills it.
