//! Connection admission: a cap on open connections per listener and per
//! client IP address.
//!
//! A connection over either cap is closed as soon as it is accepted, before
//! any byte is read, so a flood from one address (or from many) cannot use
//! up the process's open files and starve the other listener. An admitted
//! connection holds an [`Admission`] that gives its place back on drop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections, in total and by client address.
pub(crate) struct Admissions {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The listener holds its maximum of connections.
    Total,
    /// This client address holds its maximum.
    PerIp,
}

impl Admissions {
    /// At most `max_total` connections, `max_per_ip` from one address.
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Admissions> {
        Arc::new(Admissions {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits a connection from `ip`, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let from_ip = open.by_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Admission {
            admissions: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// An admitted connection's place; dropping it frees the place.
pub(crate) struct Admission {
    admissions: Arc<Admissions>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self
            .admissions
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(count) = open.by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

/// The connections a listener may hold given the process's open-file limit:
/// half of it, so the other listener, the data dir and guests keep the rest.
pub(crate) fn file_limited(max_total: usize) -> usize {
    match rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        Some(files) => max_total.min(usize::try_from(files / 2).unwrap_or(usize::MAX)),
        None => max_total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let admissions = Admissions::new(10, 2);
        let _a1 = admissions.admit(A).unwrap();
        let a2 = admissions.admit(A).unwrap();
        assert_eq!(admissions.admit(A).err(), Some(Refusal::PerIp));
        assert!(admissions.admit(B).is_ok());
        drop(a2);
        assert!(admissions.admit(A).is_ok());
    }

    #[test]
    fn the_total_cap_holds_across_addresses_and_frees_on_drop() {
        let admissions = Admissions::new(2, 5);
        let a = admissions.admit(A).unwrap();
        let _b = admissions.admit(B).unwrap();
        assert_eq!(admissions.admit(B).err(), Some(Refusal::Total));
        drop(a);
        assert_eq!(admissions.total(), 1);
        assert!(admissions.admit(A).is_ok());
    }
}
