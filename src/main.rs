//! The binary edge: parse arguments, call `backlogctl::run`, map the outcome to an exit code.
//! The only place that prints an error.

use std::io::{self, Write};
use std::process::ExitCode;

use backlogctl::{EXIT_ERROR, cli::Cli};
use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // Stdout is line-buffered: a pretty snapshot of 10,000 listeners would be 150,000 writes.
    // Commands flush where output must show at once (watch, after each refresh).
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut err = io::stderr();
    let result = backlogctl::run(cli, &mut out, &mut err).and_then(|status| {
        out.flush()
            .map(|_| status)
            .map_err(backlogctl::Error::Output)
    });
    match result {
        Ok(status) => status.exit_code(),
        // `backlogctl ... | head` closed stdout: the reader has what it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// clap would exit 2, which reads as "critical" in our convention: usage errors exit 3, with
/// clap's whole message (the missing argument's name, "a similar argument exists"), whose first
/// line is the `error:` line; help and version go to stdout and exit 0.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_ERROR)
        }
        _ => {
            let text = e.render().to_string();
            let text = text.trim_start();
            let text = if text.starts_with("error: ") {
                text.to_string()
            } else {
                format!("error: {text}")
            };
            let _ = writeln!(io::stderr(), "{}", text.trim_end());
            ExitCode::from(EXIT_ERROR)
        }
    }
}
