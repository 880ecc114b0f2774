//! Reject frames: the camera frame of every rejected unit, kept as a grayscale PNG in
//! `<data-dir>/frames/` for the exception review, named so that name order is record
//! order (`<wall µs>-u<unit>-<serial>.png`), and pruned oldest first to the profile's
//! bound (file count and bytes). It owns the directory and the names; it does not
//! decide which units are rejects (the coordinator) or who may see a frame (the HMI).
//! Writing happens on the recorder thread, once per reject: it may allocate.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::vision::GreyFrame;

/// How many reject frames are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRetention {
    /// Newest frames kept (0: no frame is stored). Default 500.
    pub keep: usize,
    /// Bytes the kept frames may take together; the oldest go first. Default 256 MiB.
    pub max_bytes: u64,
}

impl Default for FrameRetention {
    fn default() -> Self {
        FrameRetention {
            keep: 500,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why a frame could not be stored or found.
#[derive(Debug, thiserror::Error)]
pub enum FrameStoreError {
    /// The directory or a file could not be written, read or removed.
    #[error("reject frames {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PNG encoder refused the frame.
    #[error("reject frame {name}: {message}")]
    Encode {
        /// The frame's file name.
        name: String,
        /// What the encoder said.
        message: String,
    },
    /// A name that is not a stored frame's (path separators, wrong extension…).
    #[error("{0:?} is not a reject frame name")]
    BadName(String),
}

/// The reject-frame directory.
#[derive(Debug, Clone)]
pub struct FrameStore {
    dir: PathBuf,
    retention: FrameRetention,
}

impl FrameStore {
    /// The store in `<data_dir>/frames` (created on the first frame).
    pub fn new(data_dir: &Path, retention: FrameRetention) -> FrameStore {
        FrameStore {
            dir: data_dir.join("frames"),
            retention,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The retention bound.
    pub fn retention(&self) -> FrameRetention {
        self.retention
    }

    /// The file name for a unit's frame recorded at `wall_us`; characters of the serial
    /// outside `[A-Za-z0-9]` become `_` (GS1 serials may hold `/` and the like).
    pub fn name_for(wall_us: u64, unit: u64, serial: Option<&str>) -> String {
        let serial: String = serial
            .unwrap_or("none")
            .chars()
            .take(40)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("{wall_us:016}-u{unit}-{serial}.png")
    }

    /// The path of a stored frame's `name`, refusing anything that is not a name this
    /// store makes (so a request cannot reach outside the directory).
    pub fn path_of(&self, name: &str) -> Result<PathBuf, FrameStoreError> {
        let ok = name.len() <= 120
            && name.ends_with(".png")
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(FrameStoreError::BadName(name.to_string()));
        }
        Ok(self.dir.join(name))
    }

    /// Store `frame` as `name` (grayscale PNG, written to a temporary file and renamed),
    /// then prune to the retention bound. Does nothing when `keep` is 0.
    pub fn save(&self, name: &str, frame: &GreyFrame) -> Result<(), FrameStoreError> {
        if self.retention.keep == 0 {
            return Ok(());
        }
        let path = self.path_of(name)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FrameStoreError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut png = Vec::new();
        {
            use image::ImageEncoder;
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(
                    frame.pixels(),
                    frame.width(),
                    frame.height(),
                    image::ExtendedColorType::L8,
                )
                .map_err(|e| FrameStoreError::Encode {
                    name: name.to_string(),
                    message: e.to_string(),
                })?;
        }
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&png).map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.prune()
    }

    /// The stored frames, oldest first, with their sizes.
    pub fn list(&self) -> Result<Vec<(String, u64)>, FrameStoreError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(FrameStoreError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if self.path_of(&name).is_err() {
                continue;
            }
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((name, len));
        }
        out.sort();
        Ok(out)
    }

    /// Delete the oldest frames until both bounds hold.
    pub fn prune(&self) -> Result<(), FrameStoreError> {
        let frames = self.list()?;
        let mut count = frames.len();
        let mut bytes: u64 = frames.iter().map(|f| f.1).sum();
        for (name, len) in frames {
            if count <= self.retention.keep && bytes <= self.retention.max_bytes {
                break;
            }
            let path = self.dir.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(FrameStoreError::Io { path, source }),
            }
            count -= 1;
            bytes = bytes.saturating_sub(len);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: u8) -> GreyFrame {
        GreyFrame::new(64, 48, vec![v; 64 * 48]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn frames_are_png_and_the_newest_are_kept_within_the_bounds() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = FrameStore::new(
            dir.path(),
            FrameRetention {
                keep: 3,
                max_bytes: u64::MAX,
            },
        );
        for unit in 1..=5u64 {
            let name = FrameStore::name_for(1_000 + unit, unit, Some("AB/12"));
            store
                .save(&name, &frame(unit as u8 * 40))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let names: Vec<String> = store
            .list()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            names,
            [
                "0000000000001003-u3-AB_12.png",
                "0000000000001004-u4-AB_12.png",
                "0000000000001005-u5-AB_12.png"
            ]
        );
        let png = std::fs::read(store.dir().join(&names[2])).unwrap_or_else(|e| panic!("{e}"));
        let back = GreyFrame::from_image_bytes(&png, crate::vision::FrameLimits::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, frame(200));
        // A byte bound below two frames keeps one.
        let one = png.len() as u64;
        let tight = FrameStore::new(
            dir.path(),
            FrameRetention {
                keep: 100,
                max_bytes: one + one / 2,
            },
        );
        tight.prune().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tight.list().unwrap_or_default().len(), 1);
    }

    #[test]
    fn names_outside_the_store_are_refused() {
        let store = FrameStore::new(Path::new("/data"), FrameRetention::default());
        for bad in ["../x.png", "a/b.png", ".hidden.png", "x.pgm", ""] {
            assert!(store.path_of(bad).is_err(), "{bad}");
        }
        assert!(store.path_of("0000000000000001-u1-A.png").is_ok());
        let none = FrameRetention {
            keep: 0,
            ..FrameRetention::default()
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let off = FrameStore::new(dir.path(), none);
        off.save("0000000000000001-u1-A.png", &frame(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!off.dir().exists());
    }
}
