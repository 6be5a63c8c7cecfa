//! `wisp calls`: follow async calls (`Prefer: respond-async`).
//!
//! `wisp calls get ID` prints one call — its state, attempts and times,
//! and once finished the function's response; `wisp calls ls` lists calls,
//! newest first, optionally of one function or in one state.

use super::{AdminArgs, Globals};
use crate::output::table;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use wisp_spec::api::{CallInfo, CallState};

/// `wisp calls`.
#[derive(Debug, Args)]
pub(crate) struct CallsCommand {
    #[command(subcommand)]
    action: CallsAction,
}

#[derive(Debug, Subcommand)]
enum CallsAction {
    /// Show one call: `wisp calls get ID` (the `x-wisp-call-id` of its 202).
    Get {
        /// The call id.
        id: String,
        /// Print the call as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List calls, newest first.
    #[command(alias = "list")]
    Ls {
        /// Only calls of this function.
        #[arg(long, value_name = "FN")]
        function: Option<String>,
        /// Only calls in this state: queued, running, done or failed.
        #[arg(long, value_name = "STATE")]
        state: Option<CallState>,
        /// Show at most this many.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

impl CallsCommand {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        match self.action {
            CallsAction::Get { id, json, admin } => {
                let call = admin.client(globals)?.call_info(&id).await?;
                if globals.json(json) {
                    println!("{}", serde_json::to_string_pretty(&call)?);
                } else {
                    print!("{}", describe(&call));
                }
                Ok(ExitCode::SUCCESS)
            }
            CallsAction::Ls {
                function,
                state,
                limit,
                json,
                admin,
            } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if let Some(function) = &function {
                    query.append_pair("function", function);
                }
                if let Some(state) = state {
                    query.append_pair("state", state.as_str());
                }
                query.append_pair("limit", &limit.to_string());
                let client = admin.client(globals)?;
                let list = client.calls(&query.finish()).await?;
                if globals.json(json) {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else if list.calls.is_empty() {
                    match &function {
                        Some(name) if !client.exists(name).await? => println!(
                            "no async calls: no function named {name} is deployed (`wisp ls` lists them)"
                        ),
                        _ => println!("no async calls"),
                    }
                } else {
                    println!("{}", table(&HEADER, list.calls.iter().map(row)));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

const HEADER: [&str; 7] = [
    "ID", "FUNCTION", "STATE", "ATTEMPTS", "STATUS", "ACCEPTED", "REQUEST",
];

fn row(call: &CallInfo) -> Vec<String> {
    vec![
        call.id.clone(),
        call.function.clone(),
        call.state.as_str().to_owned(),
        call.attempts.to_string(),
        call.response
            .as_ref()
            .map_or_else(|| "-".to_owned(), |r| r.status.to_string()),
        time(call.accepted_unix_ms),
        format!("{} {}", call.method, call.path),
    ]
}

fn time(unix_ms: u64) -> String {
    crate::output::unix_time(unix_ms / 1000)
}

/// A call as text: a summary, then the response.
fn describe(call: &CallInfo) -> String {
    let mut text = format!(
        "call {}: {} {} {} ({})\n",
        call.id,
        call.function,
        call.method,
        call.path,
        call.state.as_str()
    );
    text += &format!("attempts: {}\n", call.attempts);
    text += &format!("accepted: {} UTC\n", time(call.accepted_unix_ms));
    for (label, at) in [
        ("started", call.started_unix_ms),
        ("finished", call.finished_unix_ms),
        ("next attempt", call.next_attempt_unix_ms),
    ] {
        if let Some(at) = at {
            text += &format!("{label}: {} UTC\n", time(at));
        }
    }
    if let Some(error) = &call.error {
        text += &format!("error: {error}\n");
    }
    if let Some(callback) = &call.callback {
        let outcome = callback.outcome.as_deref().unwrap_or("not sent yet");
        text += &format!("callback: {} ({outcome})\n", callback.url);
    }
    if let Some(response) = &call.response {
        let version = response
            .version
            .map(|v| format!(" from v{v}"))
            .unwrap_or_default();
        text += &format!("\nresponse: {}{version}\n", response.status);
        for (name, value) in &response.headers {
            text += &format!("{name}: {value}\n");
        }
        text.push('\n');
        match (&response.body, &response.body_base64) {
            (Some(body), _) => text += body,
            (None, Some(base64)) => text += &format!("(binary body, base64) {base64}"),
            (None, None) => {}
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if response.truncated {
            text += &format!(
                "(the body was {} bytes; only the first part is kept)\n",
                response.body_bytes
            );
        }
    }
    text
}
