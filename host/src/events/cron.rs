//! Cron: fires the schedules of every deployed function.
//!
//! One task per host wakes at the next due tick (and at least once a
//! second, to see deploys). A tick sends the function a `POST` to its route
//! plus its `cron-path`, with `x-wisp-trigger: cron`, `x-wisp-schedule` and
//! an empty body, through the same path as a public request: routing, the
//! traffic split, the function's limits, the access log and metering. While
//! a schedule's last run is still going, its next tick is skipped and
//! counted. Ticks missed while the host was down are not replayed: a
//! schedule's next run is computed from when the host sees it.
//!
//! In a cluster, each tick runs on one host only: the first to claim it
//! in the cluster's `wisp-cron` bucket.
//!
//! The schedules are those of the versions holding traffic. The task holds
//! its [`Cron`] weakly, so dropping the host stops it.

use super::Trigger;
use crate::backplane::SharedState;
use crate::observe::metrics::Metrics;
use crate::registry::FunctionEntry;
use crate::registry::{Audience, Registry};
use crate::request::Dispatcher;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wisp_spec::api::ScheduleInfo;
use wisp_spec::headers::{SCHEDULE_HEADER, TRIGGER_HEADER};
use wisp_spec::schedule::Schedule;

/// Longest the task sleeps, so a new deploy's schedule is seen.
const MAX_NAP: Duration = Duration::from_secs(1);

/// One schedule of one function.
#[derive(Clone)]
struct Job {
    function: String,
    /// Route plus cron path: what the tick requests.
    target: String,
    schedule: Schedule,
}

impl Job {
    fn key(&self) -> (String, String, String) {
        (
            self.function.clone(),
            self.schedule.as_str().to_owned(),
            self.target.clone(),
        )
    }
}

/// What the cron task uses: the deployed schedules, the request path, and
/// the shared claims that make a tick run once per cluster.
pub(crate) struct Cron {
    pub(crate) registry: Arc<Registry>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) shared: Arc<dyn SharedState>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Starts the cron task of `cron`, until it is dropped.
pub(crate) fn start(cron: Weak<Cron>) {
    tokio::spawn(run(cron));
}

async fn run(owner: Weak<Cron>) {
    let mut due: HashMap<(String, String, String), SystemTime> = HashMap::new();
    let mut running: HashMap<(String, String, String), Arc<AtomicBool>> = HashMap::new();
    loop {
        let Some(cron) = owner.upgrade() else { return };
        let now = SystemTime::now();
        let jobs = jobs(&cron);
        let keys: HashSet<_> = jobs.iter().map(Job::key).collect();
        due.retain(|key, _| keys.contains(key));
        running.retain(|key, _| keys.contains(key));
        let mut nap = MAX_NAP;
        for job in &jobs {
            let key = job.key();
            let Some(at) = due
                .get(&key)
                .copied()
                .or_else(|| job.schedule.next_after(now))
            else {
                continue;
            };
            let at = if at <= now {
                let flag = running.entry(key.clone()).or_default().clone();
                fire(&cron, job, at, flag);
                match job.schedule.next_after(now) {
                    Some(next) => next,
                    None => continue,
                }
            } else {
                at
            };
            due.insert(key, at);
            nap = nap.min(at.duration_since(now).unwrap_or_default());
        }
        drop(cron);
        tokio::time::sleep(nap).await;
    }
}

/// Every deployed function's jobs.
fn jobs(cron: &Cron) -> Vec<Job> {
    let snapshot = cron.registry.snapshot();
    snapshot
        .entries()
        .values()
        .flat_map(|e| jobs_of(e))
        .collect()
}

/// The schedules of `entry`'s versions holding traffic, one job per
/// distinct schedule and target.
fn jobs_of(entry: &FunctionEntry) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for share in &entry.record.traffic {
        let Some(version) = entry.versions.get(&share.version) else {
            continue;
        };
        let settings = &version.settings;
        let path = settings.cron_path.as_deref().unwrap_or("");
        let target = join(entry.route.as_str(), path);
        for schedule in &settings.cron {
            let job = Job {
                function: entry.record.name.clone(),
                target: target.clone(),
                schedule: schedule.clone(),
            };
            if !jobs.iter().any(|j| j.key() == job.key()) {
                jobs.push(job);
            }
        }
    }
    jobs
}

/// `entry`'s schedules and their next runs, for listings.
pub(crate) fn schedules(entry: &FunctionEntry) -> Vec<ScheduleInfo> {
    let now = SystemTime::now();
    jobs_of(entry)
        .into_iter()
        .map(|job| ScheduleInfo {
            next_run_unix: job
                .schedule
                .next_after(now)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            schedule: job.schedule.as_str().to_owned(),
            target: job.target,
        })
        .collect()
}

/// The route with `path` (and its query) after it.
fn join(route: &str, path: &str) -> String {
    match (route.trim_end_matches('/'), path) {
        ("", "") => "/".to_owned(),
        (base, "") => base.to_owned(),
        (base, path) => format!("{base}{path}"),
    }
}

/// Runs the tick due `at` on its own task unless the last run is still
/// going; in a cluster, only on the host that claims it.
fn fire(cron: &Arc<Cron>, job: &Job, at: SystemTime, running: Arc<AtomicBool>) {
    if running.swap(true, Ordering::AcqRel) {
        cron.metrics
            .record_trigger_skipped(&job.function, Trigger::Cron);
        tracing::info!(function = %job.function, schedule = job.schedule.as_str(), "cron tick skipped: the last run is still going");
        return;
    }
    let cron = cron.clone();
    let job = job.clone();
    tokio::spawn(async move {
        if !claim_tick(&cron, &job, at).await {
            running.store(false, Ordering::Release);
            return;
        }
        let request = http::Request::post(job.target.as_str())
            .header(TRIGGER_HEADER, Trigger::Cron.as_str())
            .header(SCHEDULE_HEADER, job.schedule.as_str())
            .body(Empty::<Bytes>::new());
        match request {
            Ok(request) => {
                let response = cron
                    .dispatcher
                    .handle_named(&job.function, request, Audience::Public, Trigger::Cron)
                    .await;
                // The body drives a streaming guest to its end.
                let _ = response.into_body().collect().await;
            }
            Err(e) => {
                tracing::error!(function = %job.function, "a cron tick's request could not be built: {e}");
            }
        }
        running.store(false, Ordering::Release);
    });
}

/// Claims the tick of `job` due `at` for this host (true when this host
/// runs it): always, alone; in a cluster, for the first host to claim it.
async fn claim_tick(cron: &Cron, job: &Job, at: SystemTime) -> bool {
    let due = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (function, schedule, target) = job.key();
    cron.shared
        .claim_tick(&format!("{function} {schedule} {target}"), due)
        .await
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn a_tick_requests_the_route_plus_the_cron_path() {
        assert_eq!(join("/hello", ""), "/hello");
        assert_eq!(join("/", ""), "/");
        assert_eq!(join("/hello", "/tick?x=1"), "/hello/tick?x=1");
        assert_eq!(join("/", "/tick"), "/tick");
    }
}
