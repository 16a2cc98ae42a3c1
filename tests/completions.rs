//! The shell completion scripts in completions/ are exactly what `backlogctl completions SHELL`
//! prints: this test runs that command through `backlogctl::run`, the binary's own path, and
//! fails when a checked-in script differs, as tests/man.rs does for the man pages. The .deb
//! ships these files (Cargo.toml, `[package.metadata.deb]`). Regenerate after a CLI change with
//! `UPDATE_COMPLETIONS=1 cargo test --test completions`. The bash script must pass `bash -n`
//! (that part skipped without bash; failed under CI=true).

mod common;

use std::path::PathBuf;
use std::process::Command;

use backlogctl::Status;
use backlogctl::cli::Cli;
use clap::Parser;

/// Shell, and the file name that shell's completion directory expects.
const SCRIPTS: [(&str, &str); 3] = [
    ("bash", "backlogctl.bash"),
    ("zsh", "_backlogctl"),
    ("fish", "backlogctl.fish"),
];

fn script(shell: &str) -> Vec<u8> {
    let cli = Cli::try_parse_from(["backlogctl", "completions", shell]).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = backlogctl::run(cli, &mut out, &mut err).unwrap();
    assert_eq!(status, Status::Ok);
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    out
}

#[test]
fn completions_are_generated_from_the_cli() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("completions");
    let stale = common::stale_generated(
        &dir,
        "UPDATE_COMPLETIONS",
        SCRIPTS.map(|(shell, file)| (file.to_string(), script(shell))),
    );
    assert!(
        stale.is_empty(),
        "completions out of date: {stale:?}; run UPDATE_COMPLETIONS=1 cargo test --test completions"
    );
    // The bash script at least parses; checked after the loop, which may have just written it.
    let bash = dir.join("backlogctl.bash");
    match Command::new("bash").arg("-n").arg(&bash).output() {
        Ok(o) => assert!(
            o.status.success(),
            "bash -n {}: {}",
            bash.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => common::skip(
            "completions_are_generated_from_the_cli",
            &format!("part: bash -n: cannot run bash (Debian package bash): {e}"),
        ),
    }
}
