//! [`UnitSlots`]: the coordinator's per-unit state of the running batch, kept by unit
//! number in a ring allocated once at batch start ([`SLOTS`] units), so tracking units
//! in steady state allocates nothing. A unit's entry is reused by the unit [`SLOTS`]
//! later; a finished unit there is dropped, an unfinished one (a pass the PLC never
//! confirmed, say) moves to a small ordered side map until it finishes, so nothing still
//! in flight is lost however long it waits. It owns the storage only: what a slot holds
//! and when a unit is finished is the coordinator's.

use std::collections::BTreeMap;

/// Units the ring holds (well beyond the units between printer and reject station).
pub(crate) const SLOTS: usize = 4096;

/// Per-unit entries of one batch.
pub(crate) struct UnitSlots<T> {
    /// Entry `unit % SLOTS`: the unit it holds and its value.
    ring: Vec<Option<(u64, T)>>,
    /// Unfinished units whose ring entry a later unit took (rare: usually empty).
    spill: BTreeMap<u64, T>,
}

impl<T> UnitSlots<T> {
    /// An empty ring of [`SLOTS`] entries (the one allocation).
    pub(crate) fn new() -> Self {
        UnitSlots {
            ring: std::iter::repeat_with(|| None).take(SLOTS).collect(),
            spill: BTreeMap::new(),
        }
    }

    fn index(unit: u64) -> usize {
        (unit % SLOTS as u64) as usize
    }

    /// The entry of `unit`, if it is held.
    pub(crate) fn get(&self, unit: u64) -> Option<&T> {
        match self.ring.get(Self::index(unit)) {
            Some(Some((u, t))) if *u == unit => Some(t),
            _ if self.spill.is_empty() => None,
            _ => self.spill.get(&unit),
        }
    }

    /// The entry of `unit` to change, if it is held.
    pub(crate) fn get_mut(&mut self, unit: u64) -> Option<&mut T> {
        let i = Self::index(unit);
        if matches!(self.ring.get(i), Some(Some((u, _))) if *u == unit) {
            return self
                .ring
                .get_mut(i)
                .and_then(|e| e.as_mut())
                .map(|(_, t)| t);
        }
        self.spill.get_mut(&unit)
    }

    /// Set the entry of `unit` (replacing one it had). `finished` tells whether a unit's
    /// entry may be dropped: the older unit in the way is dropped if it is, kept aside if
    /// not.
    pub(crate) fn insert(&mut self, unit: u64, value: T, finished: impl Fn(&T) -> bool) {
        if !self.spill.is_empty() {
            if let Some(t) = self.spill.get_mut(&unit) {
                *t = value;
                return;
            }
            // Side entries that have finished since and are a ring's length behind go.
            self.spill
                .retain(|u, t| !finished(t) || unit.saturating_sub(*u) < SLOTS as u64);
        }
        let Some(entry) = self.ring.get_mut(Self::index(unit)) else {
            return;
        };
        match entry.take() {
            Some((held, old)) if held > unit => {
                // A later unit holds the entry: it stays, this one goes aside.
                *entry = Some((held, old));
                self.spill.insert(unit, value);
            }
            Some((held, old)) => {
                if held != unit && !finished(&old) {
                    self.spill.insert(held, old);
                }
                *entry = Some((unit, value));
            }
            None => *entry = Some((unit, value)),
        }
    }

    /// Every held entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.ring
            .iter()
            .filter_map(|e| e.as_ref().map(|(u, t)| (*u, t)))
            .chain(self.spill.iter().map(|(u, t)| (*u, t)))
    }

    /// Remove the entries of units `from` and later and return them in unit order.
    pub(crate) fn take_from(&mut self, from: u64) -> Vec<(u64, T)> {
        let mut out: Vec<(u64, T)> = self.spill.split_off(&from).into_iter().collect();
        for e in self.ring.iter_mut() {
            if let Some((u, t)) = e.take_if(|(u, _)| *u >= from) {
                out.push((u, t));
            }
        }
        out.sort_by_key(|(u, _)| *u);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (value, finished)
    type E = (u32, bool);
    fn done(e: &E) -> bool {
        e.1
    }

    #[test]
    fn units_are_found_by_number_and_replaced() {
        let mut s = UnitSlots::<E>::new();
        assert!(s.get(7).is_none());
        s.insert(7, (1, false), done);
        s.insert(8, (2, false), done);
        assert_eq!(s.get(7), Some(&(1, false)));
        if let Some(e) = s.get_mut(8) {
            e.1 = true;
        }
        assert_eq!(s.get(8), Some(&(2, true)));
        s.insert(7, (3, false), done);
        assert_eq!(s.get(7), Some(&(3, false)));
        assert_eq!(s.iter().count(), 2);
    }

    #[test]
    fn a_finished_unit_gives_its_entry_to_the_unit_a_ring_later() {
        let mut s = UnitSlots::<E>::new();
        s.insert(5, (1, true), done);
        s.insert(5 + SLOTS as u64, (2, false), done);
        assert!(s.get(5).is_none());
        assert_eq!(s.get(5 + SLOTS as u64), Some(&(2, false)));
        assert_eq!(s.iter().count(), 1);
    }

    #[test]
    fn an_unfinished_unit_is_kept_aside_until_it_finishes() {
        let mut s = UnitSlots::<E>::new();
        let late = 5 + SLOTS as u64;
        s.insert(5, (1, false), done);
        s.insert(late, (2, false), done);
        assert_eq!(s.get(5), Some(&(1, false)));
        assert_eq!(s.get(late), Some(&(2, false)));
        // A ring later again: both earlier ones are aside, and found there.
        s.insert(5 + 2 * SLOTS as u64, (4, false), done);
        s.insert(late, (3, false), done);
        assert_eq!(s.get(late), Some(&(3, false)));
        assert_eq!(s.get(5 + 2 * SLOTS as u64), Some(&(4, false)));
        if let Some(e) = s.get_mut(5) {
            e.1 = true;
        }
        // Finished and a ring's length behind: dropped at the next insert.
        s.insert(6 + 2 * SLOTS as u64, (5, false), done);
        assert!(s.get(5).is_none());
        assert_eq!(s.iter().count(), 3);
    }

    #[test]
    fn an_older_unit_goes_aside_where_a_later_one_sits() {
        let mut s = UnitSlots::<E>::new();
        s.insert(9 + SLOTS as u64, (1, true), done);
        s.insert(9, (2, false), done);
        assert_eq!(s.get(9 + SLOTS as u64), Some(&(1, true)));
        assert_eq!(s.get(9), Some(&(2, false)));
    }

    #[test]
    fn entries_from_a_unit_on_come_out_in_unit_order() {
        let mut s = UnitSlots::<E>::new();
        for u in [12u64, 10, 11, 3, 10 + SLOTS as u64] {
            s.insert(u, (u as u32, false), done);
        }
        let taken: Vec<u64> = s.take_from(10).into_iter().map(|(u, _)| u).collect();
        assert_eq!(taken, vec![10, 11, 12, 10 + SLOTS as u64]);
        assert_eq!(s.iter().map(|(u, _)| u).collect::<Vec<_>>(), vec![3]);
    }
}
