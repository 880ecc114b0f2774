//! The file operations the journal needs, behind a small [`Storage`] trait so tests can
//! inject faults (a failing `fdatasync`, `ENOSPC` part-way through a write) into the
//! real filesystem. [`FsStorage`] is the only production implementation: plain
//! `std::fs` files, `fdatasync` via `File::sync_data`, directory fsync after creating,
//! renaming or removing files. This module does not know the journal format.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An open file of the journal (a segment or the cursor file).
pub trait StorageFile: Send + 'static {
    /// Write all of `buf` at the current end of the file.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Make written data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Current length in bytes.
    fn size(&mut self) -> io::Result<u64>;
    /// Cut (or extend with zeros) the file to `len` bytes; later appends go to the new end.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Read up to `buf.len()` bytes at `offset`; returns the count read (0 at end).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// The directory-level operations of the journal.
pub trait Storage: Send + Sync + 'static {
    /// Create `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir` (files only, no order promised).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Create a new file that must not exist yet, open for appending and reading.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Create or truncate a file, open for appending.
    fn create_truncate(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Open an existing file for appending and reading.
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Open an existing file read-only.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Remove a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Atomically rename `from` to `to` (replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Make the directory's entries durable (fsync on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take an exclusive lock on the directory for the life of the returned guard, so
    /// two processes never write the same journal. `Ok(None)` if another holder has it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>>;
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStorage;

struct FsFile {
    file: File,
}

impl StorageFile for FsFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::End(0))?;
        self.file.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.seek(SeekFrom::Start(offset))?;
        let mut done = 0;
        while done < buf.len() {
            match self.file.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

fn boxed(file: File) -> Box<dyn StorageFile> {
    Box::new(FsFile { file })
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(boxed(f))
    }

    fn create_truncate(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(boxed(f))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(boxed(OpenOptions::new().read(true).write(true).open(path)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(boxed(File::open(path)?))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        use fs4::fs_std::FileExt;
        let path: PathBuf = dir.join("LOCK");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if FileExt::try_lock_exclusive(&f)? {
            Ok(Some(Box::new(f)))
        } else {
            Ok(None)
        }
    }
}
