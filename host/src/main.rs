//! The `wisp` binary: parses flags and hands over to [`wisp_host::cli`].

fn main() -> std::process::ExitCode {
    wisp_host::cli::main()
}
