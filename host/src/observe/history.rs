//! [`History`]: the last ten minutes of one function's traffic, second by
//! second, which the web console charts.
//!
//! Each second keeps its request and error (5xx) counts, a latency
//! histogram in powers of two of microseconds (enough for p50 and p99 to
//! within a factor of two), and the instantiation times' sum. Recording
//! takes a short lock on the function's own history; reading builds the
//! series on demand. Latency is measured to the response head.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wisp_spec::api::{HistoryPoint, TrafficStats};

/// Seconds kept.
const KEPT_SECONDS: u64 = 600;

/// Latency buckets: bucket `i` holds latencies below 2^(i+1) µs.
const BUCKETS: usize = 28;

#[derive(Debug, Clone)]
struct Second {
    at: u64,
    requests: u32,
    errors: u32,
    latency: [u32; BUCKETS],
    instantiate_us: u64,
    instantiated: u32,
}

impl Second {
    fn new(at: u64) -> Second {
        Second {
            at,
            requests: 0,
            errors: 0,
            latency: [0; BUCKETS],
            instantiate_us: 0,
            instantiated: 0,
        }
    }

    fn add(&mut self, other: &Second) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            *mine += theirs;
        }
        self.instantiate_us += other.instantiate_us;
        self.instantiated += other.instantiated;
    }

    /// The latency below which `share` of the requests fall, in µs (the
    /// upper bound of its bucket).
    fn quantile_us(&self, share: f64) -> Option<u64> {
        let total: u32 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = (f64::from(total) * share).ceil().max(1.0) as u32;
        let mut seen = 0;
        for (i, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(1 << (i + 1));
            }
        }
        None
    }

    fn instantiate_us(&self) -> Option<u64> {
        (self.instantiated > 0).then(|| self.instantiate_us / u64::from(self.instantiated))
    }
}

/// One function's recent traffic.
#[derive(Debug, Default)]
pub struct History {
    seconds: Mutex<VecDeque<Second>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl History {
    /// Records one request answered with `status` after `latency`, whose
    /// sandbox took `instantiate` to create (if one was).
    pub fn record(
        &self,
        status: http::StatusCode,
        latency: Duration,
        instantiate: Option<Duration>,
    ) {
        let now = now_secs();
        let mut seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        if seconds.back().is_none_or(|s| s.at != now) {
            seconds.push_back(Second::new(now));
            while seconds.front().is_some_and(|s| s.at + KEPT_SECONDS <= now) {
                seconds.pop_front();
            }
        }
        let Some(second) = seconds.back_mut() else {
            return;
        };
        second.requests += 1;
        second.errors += u32::from(status.is_server_error());
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let bucket = (63 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        second.latency[bucket] += 1;
        if let Some(instantiate) = instantiate {
            second.instantiate_us += u64::try_from(instantiate.as_micros()).unwrap_or(u64::MAX);
            second.instantiated += 1;
        }
    }

    /// The last `window` seconds, one point per second (seconds without
    /// traffic included, as zeros).
    pub fn series(&self, window: u64) -> Vec<HistoryPoint> {
        let now = now_secs();
        let seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        let start = now.saturating_sub(window.min(KEPT_SECONDS) - 1);
        // Kept seconds are in order: walk them once beside the window.
        let mut kept = seconds.iter().skip_while(|s| s.at < start).peekable();
        (start..=now)
            .map(|at| {
                let second = match kept.next_if(|s| s.at == at) {
                    Some(second) => second.clone(),
                    None => Second::new(at),
                };
                HistoryPoint {
                    at_unix: at,
                    requests: second.requests,
                    errors: second.errors,
                    p50_us: second.quantile_us(0.5),
                    p99_us: second.quantile_us(0.99),
                    instantiate_us: second.instantiate_us(),
                }
            })
            .collect()
    }

    /// Totals over the last `window` seconds.
    pub fn stats(&self, window: u64) -> TrafficStats {
        let now = now_secs();
        let seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = Second::new(now);
        for second in seconds.iter().filter(|s| s.at + window > now) {
            total.add(second);
        }
        TrafficStats {
            window_seconds: window,
            requests_per_second: f64::from(total.requests) / window as f64,
            error_rate: if total.requests == 0 {
                0.0
            } else {
                f64::from(total.errors) / f64::from(total.requests)
            },
            p50_us: total.quantile_us(0.5),
            p99_us: total.quantile_us(0.99),
            instantiate_us: total.instantiate_us(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_counts_requests_errors_and_latency_quantiles() {
        let history = History::default();
        for _ in 0..98 {
            history.record(
                http::StatusCode::OK,
                Duration::from_micros(100),
                Some(Duration::from_micros(20)),
            );
        }
        history.record(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            Duration::from_millis(5),
            None,
        );
        history.record(http::StatusCode::OK, Duration::from_millis(40), None);
        let stats = history.stats(10);
        assert_eq!(stats.requests_per_second, 10.0);
        assert_eq!(stats.error_rate, 0.01);
        assert_eq!(
            stats.p50_us,
            Some(128),
            "100 µs is in the bucket up to 128 µs"
        );
        assert_eq!(stats.p99_us, Some(8192), "the 99th of 100 is the 5 ms one");
        assert_eq!(stats.instantiate_us, Some(20));
        let series = history.series(60);
        assert_eq!(series.len(), 60);
        assert_eq!(series.iter().map(|p| p.requests).sum::<u32>(), 100);
    }
}
