//! The operating-system wall a child process puts up around itself before
//! it touches untrusted input (today: the compile child, which runs
//! Cranelift on an uploaded module): `no_new_privs`, and a Landlock ruleset
//! that denies every filesystem access, TCP bind and connect, and signals
//! or abstract sockets beyond its own process — a child that only reads
//! stdin and writes stdout needs none of them. Best effort by kernel: what
//! the kernel cannot enforce is reported, never silently skipped.

use landlock::{ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetStatus, Scope};

/// The newest Landlock ABI the ruleset asks for (the kernel enforces what
/// it supports of it).
const WANTED: ABI = ABI::V6;

/// Jails the calling process (and every thread it starts from now on).
/// `Ok(None)`: fully enforced; `Ok(Some(why))`: enforced only in part, or
/// not at all, on this kernel, with why.
pub(crate) fn enter() -> Result<Option<String>, String> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED))
        .and_then(|r| r.handle_access(AccessNet::from_all(WANTED)))
        .and_then(|r| r.scope(Scope::from_all(WANTED)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("entering the jail failed: {e}"))?;
    if !status.no_new_privs {
        return Err("setting no_new_privs failed".into());
    }
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => None,
        RulesetStatus::PartiallyEnforced => Some(format!(
            "Landlock is only partly enforced on this kernel ({:?})",
            status.landlock
        )),
        RulesetStatus::NotEnforced => Some(format!(
            "Landlock is not enforced on this kernel ({:?}); only no_new_privs holds",
            status.landlock
        )),
    })
}
