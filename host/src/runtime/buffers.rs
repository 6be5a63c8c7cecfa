//! The host-wide budget for request bodies held in memory.
//!
//! A CGI guest reads its body from stdin with `CONTENT_LENGTH` known, so the
//! host reads the whole body before the guest starts. Those bytes are charged
//! to one [`BufferBudget`] (default: an eighth of the machine's memory, see
//! [`default_budget`]) while they are held; a body that would pass the budget
//! is refused with `503` and `Retry-After`, so many large bodies at once can
//! never take the host's memory. The bytes held show as the
//! `wisp_request_buffer_bytes` gauge.

use crate::error::{InvokeError, Limit};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wisp_spec::units;

/// Bytes of request bodies the host may hold at once.
pub struct BufferBudget {
    limit: u64,
    held: AtomicU64,
    gauge: Gauge,
}

/// The default budget: an eighth of physical memory (1 GiB if unknown).
pub fn default_budget() -> u64 {
    let info = rustix::system::sysinfo();
    let total = u64::from(info.mem_unit).saturating_mul(info.totalram as u64);
    if total == 0 { 1 << 30 } else { total / 8 }
}

impl BufferBudget {
    /// A budget of `limit` bytes, reported through `gauge`.
    pub(crate) fn new(limit: u64, gauge: Gauge) -> Arc<BufferBudget> {
        Arc::new(BufferBudget {
            limit,
            held: AtomicU64::new(0),
            gauge,
        })
    }

    /// The budget, in bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// An empty charge, grown as bytes arrive.
    pub(crate) fn charge(self: &Arc<Self>) -> BufferCharge {
        BufferCharge {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes one request holds; given back on drop.
pub(crate) struct BufferCharge {
    budget: Arc<BufferBudget>,
    bytes: u64,
}

impl BufferCharge {
    /// Charges `more` bytes, or fails if the budget cannot hold them.
    pub(crate) fn grow(&mut self, more: u64) -> Result<(), InvokeError> {
        let budget = &self.budget;
        let taken = budget
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(more)
                    .filter(|&total| total <= budget.limit)
            });
        if taken.is_err() {
            return Err(InvokeError::limit(
                Limit::Buffer,
                format!(
                    "the host is holding its maximum of request bodies in memory ({}); retry shortly",
                    units::format_size(budget.limit)
                ),
            ));
        }
        self.bytes += more;
        budget.gauge.inc_by(i64::try_from(more).unwrap_or(i64::MAX));
        Ok(())
    }
}

impl Drop for BufferCharge {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget
            .gauge
            .dec_by(i64::try_from(self.bytes).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_past_the_budget_are_refused_and_given_back_on_drop() {
        let gauge = Gauge::default();
        let budget = BufferBudget::new(100, gauge.clone());
        let mut a = budget.charge();
        a.grow(60).unwrap();
        let mut b = budget.charge();
        assert!(b.grow(50).is_err());
        b.grow(40).unwrap();
        assert_eq!(gauge.get(), 100);
        drop(a);
        assert_eq!(gauge.get(), 40);
        b.grow(60).unwrap();
    }

    #[test]
    fn the_default_is_a_fraction_of_the_machine() {
        assert!(default_budget() >= 1 << 20);
    }
}
