//! Simulated power cuts, which a SIGKILL test cannot show (the page cache survives a
//! killed process). The journal runs on a [`Storage`] wrapper around the real filesystem
//! that remembers, per file, how many bytes the last `fdatasync` covered. At a random
//! moment the "power" goes: every later storage call fails. Then each file's bytes
//! beyond its last `fdatasync` are lost the ways a disk loses them: cut off, cut inside
//! a record, zero-filled, or replaced by stale garbage. Reopening on the plain
//! filesystem must find every acknowledged record with its exact payload, seqs dense.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linectl::journal::{
    ConsumerConfig, FsStorage, Journal, JournalConfig, RecordType, Seq, Storage, StorageFile,
};
use rand::Rng;

const EVENT: RecordType = RecordType(9);

#[derive(Default)]
struct Power {
    off: AtomicBool,
    /// Bytes of each file covered by its last successful fdatasync.
    synced: Mutex<HashMap<PathBuf, u64>>,
}

impl Power {
    fn check(&self) -> io::Result<()> {
        if self.off.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(5)) // EIO: the machine is gone
        } else {
            Ok(())
        }
    }
}

struct CutStorage {
    power: Arc<Power>,
}

struct CutFile {
    inner: Box<dyn StorageFile>,
    path: PathBuf,
    power: Arc<Power>,
}

impl StorageFile for CutFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.power.check()?;
        self.inner.append(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.power.check()?;
        self.inner.sync_data()?;
        let len = self.inner.size()?;
        // The power may have gone while syncing: then the sync did not finish.
        self.power.check()?;
        self.power
            .synced
            .lock()
            .expect("lock")
            .insert(self.path.clone(), len);
        Ok(())
    }
    fn size(&mut self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.power.check()?;
        self.inner.set_len(len)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.power.check()?;
        self.inner.read_at(offset, buf)
    }
}

impl CutStorage {
    fn wrap(
        &self,
        path: &Path,
        f: io::Result<Box<dyn StorageFile>>,
    ) -> io::Result<Box<dyn StorageFile>> {
        self.power.check()?;
        let mut inner = f?;
        let len = inner.size()?;
        // A file opened after start-up is durable as it is (recovery fsyncs what it cuts).
        self.power
            .synced
            .lock()
            .expect("lock")
            .entry(path.to_path_buf())
            .or_insert(len);
        Ok(Box::new(CutFile {
            inner,
            path: path.to_path_buf(),
            power: self.power.clone(),
        }))
    }
}

impl Storage for CutStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.power.check()?;
        FsStorage.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.power.check()?;
        self.power
            .synced
            .lock()
            .expect("lock")
            .insert(path.to_path_buf(), 0);
        self.wrap(path, FsStorage.create_new(path))
    }
    fn create_truncate(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.power.check()?;
        self.power
            .synced
            .lock()
            .expect("lock")
            .insert(path.to_path_buf(), 0);
        self.wrap(path, FsStorage.create_truncate(path))
    }
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, FsStorage.open_rw(path))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.wrap(path, FsStorage.open_read(path))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.power.check()?;
        FsStorage.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.power.check()?;
        FsStorage.rename(from, to)?;
        let mut synced = self.power.synced.lock().expect("lock");
        if let Some(len) = synced.remove(from) {
            synced.insert(to.to_path_buf(), len);
        }
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.power.check()?;
        FsStorage.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        FsStorage.lock_dir(dir)
    }
}

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 16 * 1024,
        max_record_bytes: 2048,
        disk_budget_bytes: 1024 * 1024 * 1024,
        consumers: vec![ConsumerConfig::holding("uplink")],
        ..JournalConfig::default()
    }
}

/// Lose what the disk had not been told to keep, in one of the ways disks do.
fn lose_unsynced(path: &Path, synced: u64, rng: &mut impl Rng) -> &'static str {
    let Ok(data) = fs::read(path) else {
        return "gone";
    };
    let len = data.len() as u64;
    if len <= synced {
        return "intact";
    }
    let keep = rng.random_range(synced..=len);
    let mut new = data[..keep as usize].to_vec();
    let how = match rng.random_range(0..4) {
        0 => "cut",
        1 => {
            // Blocks allocated but never written: the rest reads as zeros.
            new.resize(len as usize, 0);
            "zero-filled"
        }
        2 => {
            // Stale bytes from a block's previous life.
            new.extend((keep..len).map(|_| rng.random::<u8>()));
            "garbage"
        }
        _ => {
            // Out-of-order writeback: a hole of zeros, later pages present.
            let mut d = data.clone();
            let hole_end = rng.random_range(keep..=len) as usize;
            d[keep as usize..hole_end].fill(0);
            new = d;
            "hole"
        }
    };
    let mut f = OpenOptions::new().write(true).open(path).expect("open");
    f.set_len(0).expect("truncate");
    std::io::Write::write_all(&mut f, &new).expect("write");
    how
}

#[test]
fn power_cuts_at_random_moments_never_lose_an_acknowledged_record() {
    const ROUNDS: usize = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rng();
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut damage: BTreeMap<&str, u32> = BTreeMap::new();
    let mut cuts_reported = 0;

    for round in 0..ROUNDS {
        let power = Arc::new(Power::default());
        let j = Journal::open_with_storage(
            config(dir.path()),
            Arc::new(CutStorage {
                power: power.clone(),
            }),
        )
        .unwrap_or_else(|e| panic!("round {round}: open failed: {e}"));
        let got: Vec<(u64, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u32)
                .map(|t| {
                    let j = &j;
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        let mut inflight = std::collections::VecDeque::new();
                        for i in 0u64.. {
                            let mut p = format!("r{round}t{t}i{i}-").into_bytes();
                            p.resize(
                                p.len() + ((i * 131 + u64::from(t) * 17) % 1500) as usize,
                                b'p',
                            );
                            let Ok(ticket) = j.append_ticket(EVENT, p.clone()) else {
                                break;
                            };
                            inflight.push_back((ticket, p));
                            if inflight.len() >= 16 {
                                let Some((ticket, p)) = inflight.pop_front() else {
                                    break;
                                };
                                match ticket.wait() {
                                    Ok(a) => mine.push((a.first.0, p)),
                                    Err(_) => break,
                                }
                            }
                        }
                        for (ticket, p) in inflight {
                            if let Ok(a) = ticket.wait() {
                                mine.push((a.first.0, p));
                            }
                        }
                        mine
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(rng.random_range(5..80)));
            power.off.store(true, Ordering::SeqCst);
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("appender"))
                .collect()
        });
        drop(j);
        for (seq, p) in got {
            assert!(
                acked.insert(seq, p).is_none(),
                "round {round}: seq {seq} acknowledged twice"
            );
        }
        let synced = power.synced.lock().expect("lock").clone();
        for (path, len) in synced {
            *damage
                .entry(lose_unsynced(&path, len, &mut rng))
                .or_default() += 1;
        }

        let j = Journal::open(config(dir.path()))
            .unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
        cuts_reported += j.recovery().cuts.len();
        let recs = j.read_from(Seq(0), usize::MAX).expect("read");
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.seq, Seq(i as u64), "round {round}: seqs not dense");
        }
        for (seq, p) in &acked {
            let r = recs.get(*seq as usize).unwrap_or_else(|| {
                panic!(
                    "round {round}: acknowledged seq {seq} lost (journal has {})",
                    recs.len()
                )
            });
            assert_eq!(
                &r.payload, p,
                "round {round}: acknowledged seq {seq} changed"
            );
        }
    }
    println!(
        "power-cut test: {ROUNDS} cuts, {} acknowledged records all present, unsynced tails {damage:?}, {cuts_reported} tail cuts reported by recovery",
        acked.len()
    );
    assert!(
        acked.len() > 500,
        "too few acknowledged records: {}",
        acked.len()
    );
    assert!(
        cuts_reported > 0,
        "no torn tail was ever produced; the test did not exercise recovery"
    );
}
