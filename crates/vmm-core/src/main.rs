//! The `kvmbus` command line. Exit codes are listed in the README.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = cli::main();
    ExitCode::from(code.clamp(0, 255) as u8)
}
