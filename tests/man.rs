//! The man pages in man/ are generated from the clap definitions (clap_mangen) plus our EXIT
//! STATUS, EXAMPLES and FILES sections; this test fails when the checked-in pages differ from
//! what the code generates. Regenerate with `UPDATE_MAN=1 cargo test --test man`.

mod common;

use std::path::PathBuf;

use backlogctl::cli::{Cli, examples, exit_codes};
use clap::CommandFactory;
use clap_mangen::Man;

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn roff_text(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn page(cmd: clap::Command, name: &'static str, examples: &str, codes: &str) -> Vec<u8> {
    // The EXIT STATUS and EXAMPLES text already shown by --help goes into sections of its own.
    let cmd = cmd
        .name(name)
        .bin_name(name.replace('-', " "))
        .after_help(None::<&str>)
        .version(env!("CARGO_PKG_VERSION"));
    let man = Man::new(cmd.clone()).date("").manual("backlogctl manual");
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    if cmd.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut out).unwrap();
    }
    let mut extra = String::from(".SH \"EXIT STATUS\"\n");
    for line in codes.lines().skip(1) {
        let (code, text) = line
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((line.trim(), ""));
        extra.push_str(&format!(
            ".TP\n\\fB{code}\\fR\n{}\n",
            roff_text(text.trim())
        ));
    }
    extra.push_str(".SH EXAMPLES\n");
    for line in examples.lines() {
        let (cmdline, what) = line.trim().split_once("  ").unwrap_or((line.trim(), ""));
        extra.push_str(&format!(
            ".TP\n.B {}\n{}\n",
            roff_text(cmdline.trim()),
            roff_text(what.trim())
        ));
    }
    extra.push_str(
        ".SH FILES\n.TP\n/proc/thread\\-self/net/netstat, /proc/thread\\-self/net/snmp\nTcpExt and Tcp counters of the network namespace.\n\
         .TP\n/proc/sys/net/core/somaxconn, /proc/sys/net/ipv4/tcp_*\nListen\\-queue sysctls of the network namespace.\n\
         .TP\n/proc/PID/fd, /proc/PID/ns/net, /proc/PID/cgroup\nOwning processes, their namespaces and containers.\n\
         .TP\n/run/netns/NAME\nNamed network namespaces (ip netns add).\n\
         .SH \"SEE ALSO\"\nss(8), nstat(8), sysctl(8), listen(2), tcp(7)\n",
    );
    out.extend_from_slice(extra.as_bytes());
    man.render_version_section(&mut out).unwrap();
    out
}

fn pages() -> Vec<(String, Vec<u8>)> {
    let mut top = Cli::command();
    top.build(); // propagates the global options into the subcommands
    let mut v = vec![(
        "backlogctl.1".to_string(),
        page(top.clone(), "backlogctl", examples(""), exit_codes("")),
    )];
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap wants a &'static name; a handful of pages per test run.
        let name: &'static str =
            Box::leak(format!("backlogctl-{}", sub.get_name()).into_boxed_str());
        v.push((
            format!("{name}.1"),
            page(
                sub.clone(),
                name,
                examples(sub.get_name()),
                exit_codes(sub.get_name()),
            ),
        ));
    }
    v
}

#[test]
fn man_pages_are_generated_from_the_cli() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man");
    let stale = common::stale_generated(&dir, "UPDATE_MAN", pages());
    assert!(
        stale.is_empty(),
        "man pages out of date: {stale:?}; run UPDATE_MAN=1 cargo test --test man"
    );
    let top = std::fs::read_to_string(dir.join("backlogctl.1")).unwrap();
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
        ".SH FILES",
    ] {
        assert!(top.contains(section), "missing {section}");
    }
}
