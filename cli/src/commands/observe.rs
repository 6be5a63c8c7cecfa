//! The verbs that watch a function: its guest logs and its usage.

use super::{AdminArgs, Globals, parse_duration_flag};
use crate::output;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use wisp_spec::api::{LogEvent, Trigger};
use wisp_spec::units;

#[derive(Debug, Args)]
pub(crate) struct Logs {
    /// The function.
    name: String,
    /// Keep printing new lines as they come.
    #[arg(short, long)]
    follow: bool,
    /// Only lines newer than this (e.g. `5m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    since: Option<std::time::Duration>,
    /// Print at most this many of the stored lines.
    #[arg(short = 'n', long, default_value_t = 1000)]
    limit: usize,
    /// Print raw JSON lines.
    #[arg(long)]
    json: bool,
    /// Print the output of the function's last build on the host
    /// (`wisp deploy NAME --source DIR`) instead of its guest logs.
    #[arg(long, conflicts_with_all = ["follow", "since", "json"])]
    build: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Logs {
    pub(crate) async fn execute(mut self, globals: &Globals) -> anyhow::Result<ExitCode> {
        use http_body_util::BodyExt;
        if self.build {
            let log = self.admin.client(globals)?.build_log(&self.name).await?;
            print!("{log}");
            return Ok(ExitCode::SUCCESS);
        }
        self.json = globals.json(self.json);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", &self.limit.to_string());
        if let Some(since) = self.since {
            query.append_pair("since", &units::format_duration(since));
        }
        if self.follow {
            query.append_pair("follow", "true");
        }
        let mut body = self
            .admin
            .client(globals)?
            .logs(&self.name, &query.finish())
            .await?;
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                self.print_line(&line[..line.len() - 1])?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn print_line(&self, raw: &[u8]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            out.write_all(raw)?;
            writeln!(out)?;
            return Ok(out.flush()?);
        }
        match serde_json::from_slice::<LogEvent>(raw)? {
            LogEvent::Dropped { dropped } => writeln!(
                out,
                "({dropped} older lines were dropped to stay within the log bound)"
            )?,
            LogEvent::Skipped { skipped } => {
                writeln!(out, "({skipped} lines skipped: this reader fell behind)")?;
            }
            LogEvent::Line(line) => writeln!(
                out,
                "{}.{:03} v{} {} {} {}: {}",
                output::unix_time(line.time_unix_ms / 1000),
                line.time_unix_ms % 1000,
                line.version,
                line.trigger.as_str(),
                line.request_id,
                line.stream.as_str(),
                line.text,
            )?,
        }
        Ok(out.flush()?)
    }
}

#[derive(Debug, Args)]
pub(crate) struct UsageCommand {
    /// The function.
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl UsageCommand {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let reply = self.admin.client(globals)?.usage(&self.name).await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&reply)?);
            return Ok(ExitCode::SUCCESS);
        }
        let u = &reply.usage;
        let lines = [
            ("function", reply.name.clone()),
            ("requests", u.requests.to_string()),
            (
                "by trigger",
                Trigger::ALL
                    .iter()
                    .map(|t| format!("{} {}", t.as_str(), u.runs.get(*t)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("wall time", format!("{:.6} s", u.wall_seconds)),
            ("cpu time", format!("{:.6} s", u.cpu_seconds)),
            ("fuel", u.fuel.to_string()),
            ("memory-time", format!("{:.9} GB·s", u.memory_gb_seconds)),
            (
                "peak memory",
                units::format_size_approx(u.peak_memory_bytes),
            ),
        ];
        for (label, value) in lines {
            println!("{label:<18} {value}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
