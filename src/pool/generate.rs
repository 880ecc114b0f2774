//! Local generation of serials where the market allows it: randomised serials from a
//! CSPRNG (EU FMD and other randomising markets), checked so that the chance of
//! guessing a valid serial stays below 1/10,000, or sequential numbers where the market
//! allows them. Generated serials go through the same staged, duplicate-checked,
//! all-or-nothing commit as imports.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{ImportReport, Pool, PoolError, SerialRecord, Source, Store};
use crate::market::{Market, SerialCharset};

/// Characters of randomised CSET 82 serials: digits and capitals without the
/// look-alikes I and O.
pub const RANDOM_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// Length of randomised serials (within the market's bounds).
pub const RANDOM_LEN: usize = 12;

/// How generation picks serials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Uniform random over `alphabet^len` from the OS-seeded CSPRNG.
    Random {
        /// Serial length.
        len: usize,
        /// Characters.
        alphabet: &'static [u8],
    },
    /// Decimal numbers counting up, zero-padded to `width`.
    Sequential {
        /// Minimum width.
        width: usize,
        /// Maximum length.
        max_len: usize,
    },
}

/// The scheme a market allows for local generation.
pub fn scheme_for(market: Market) -> Result<Scheme, PoolError> {
    let r = super::rules::serial_rules(market);
    if !r.local_generation {
        return Err(PoolError::Generation {
            market,
            reason: "this market's serials are issued by the site server or the national operator; import them".into(),
        });
    }
    if r.randomised || !r.sequential_allowed {
        let alphabet: &'static [u8] = match r.charset {
            SerialCharset::Numeric => b"0123456789",
            SerialCharset::Cset82 => RANDOM_ALPHABET,
        };
        Ok(Scheme::Random {
            len: RANDOM_LEN.clamp(r.min_len, r.max_len),
            alphabet,
        })
    } else {
        Ok(Scheme::Sequential {
            width: r.min_len,
            max_len: r.max_len,
        })
    }
}

impl<S: Store> Pool<S> {
    /// Generate `count` new serials for `gtin` of `market` and add them to the pool.
    pub fn generate(
        &mut self,
        gtin: &str,
        market: Market,
        count: u64,
    ) -> Result<ImportReport, PoolError> {
        let scheme = scheme_for(market)?;
        let gtin14 = super::rules::normalise_gtin(gtin).map_err(PoolError::BadGtin)?;
        let meta = self.meta_for(&gtin14, Some(market))?;
        let records: Box<dyn Iterator<Item = Result<SerialRecord, super::SourceError>>> =
            match scheme {
                Scheme::Random { len, alphabet } => {
                    // The whole pool of this GTIN counts: every serial in it is valid.
                    let in_use = u128::from(meta.next_seq) + u128::from(count);
                    let alphabet_len = u32::try_from(alphabet.len()).unwrap_or(u32::MAX);
                    crate::market::guessing_probability_ok(market, len, alphabet_len, in_use)
                        .map_err(|e| PoolError::Generation {
                            market,
                            reason: e.to_string(),
                        })?;
                    let mut rng = StdRng::from_os_rng();
                    // Duplicates are skipped by the importer; draw a few extra to make up for
                    // them (in a space ≥ 10,000× the pool they are rare).
                    let mut at = 0u64;
                    Box::new(std::iter::from_fn(move || {
                        at += 1;
                        let s: String = (0..len)
                            .map(|_| {
                                char::from(
                                    alphabet[rand::Rng::random_range(&mut rng, 0..alphabet.len())],
                                )
                            })
                            .collect();
                        Some(Ok(SerialRecord {
                            at,
                            serial: s,
                            ai91: None,
                            ai92: None,
                        }))
                    }))
                }
                Scheme::Sequential { width, max_len } => {
                    let first = meta.next_sequential.max(1);
                    let last = first.saturating_add(count).saturating_sub(1);
                    if last.to_string().len().max(width) > max_len {
                        return Err(PoolError::Generation {
                            market,
                            reason: format!("sequential serials would exceed {max_len} digits"),
                        });
                    }
                    Box::new((first..first.saturating_add(count)).map(move |n| {
                        Ok(SerialRecord {
                            at: n,
                            serial: format!("{n:0width$}"),
                            ai91: None,
                            ai92: None,
                        })
                    }))
                }
            };
        let name = format!("generate:{market}");
        let report = match scheme {
            Scheme::Random { .. } => {
                self.generate_random(&gtin14, market, records, count, &name)?
            }
            Scheme::Sequential { .. } => {
                let next = meta.next_sequential.max(1).saturating_add(count);
                self.import_inner(
                    &gtin14,
                    Some(market),
                    Source {
                        header: None,
                        records,
                    },
                    &name,
                    None,
                    Some(next),
                )?
            }
        };
        Ok(report)
    }

    fn generate_random(
        &mut self,
        gtin: &str,
        market: Market,
        records: Box<dyn Iterator<Item = Result<SerialRecord, super::SourceError>>>,
        count: u64,
        name: &str,
    ) -> Result<ImportReport, PoolError> {
        let limited = records.take(usize::try_from(count).unwrap_or(usize::MAX));
        let mut report = self.import(
            gtin,
            Some(market),
            Source {
                header: None,
                records: Box::new(limited),
            },
            name,
        )?;
        // A drawn serial that was already in the pool is skipped; top up (rare: the space
        // is at least 10,000 times the pool).
        let missing = count - report.imported;
        if missing > 0 {
            let more = self.generate(gtin, market, missing)?;
            report.imported += more.imported;
        }
        Ok(report)
    }
}
