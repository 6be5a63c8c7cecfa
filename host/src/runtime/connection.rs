//! Where a request came from: the addresses of its connection.
//!
//! The transport (or an embedder's own server) puts a [`ConnectionInfo`] in
//! each request's extensions; the ABIs read it (CGI's `REMOTE_ADDR`,
//! `SERVER_PORT`). It lives on the request path so the transport depends on
//! no ABI.

use std::net::{Ipv4Addr, SocketAddr};

/// The addresses of the connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the request was accepted on.
    pub local: SocketAddr,
}

impl Default for ConnectionInfo {
    fn default() -> Self {
        let unspecified = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        ConnectionInfo {
            remote: unspecified,
            local: unspecified,
        }
    }
}
