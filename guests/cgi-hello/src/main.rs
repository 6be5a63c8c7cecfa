//! `cgi-hello`: a CGI function (WASI preview1 core module). It reads the CGI
//! meta-variables from its environment and the request body from stdin, and
//! writes a CGI response to stdout: headers, a blank line, then the body.

use std::io::{Read, Write};

fn main() {
    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();
    let path_info = std::env::var("PATH_INFO").unwrap_or_default();
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    let mut body = String::new();
    // A body that is not UTF-8 is reported as empty; this guest only greets.
    let _ = std::io::stdin().read_to_string(&mut body);

    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "Content-Type: text/plain\nX-Cgi-Method: {method}\n\n\
         Hello from CGI!\nmethod={method}\npath_info={path_info}\nquery={query}\nbody={body}\n"
    );
}
