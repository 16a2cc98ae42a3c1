//! The shape of `src/`, checked: the top-level modules import each other without a circle;
//! the options module (clap's flags resolved) and the renderers are imported only by the edge;
//! no `dead_code` allowance hides unused code; every module opens with a `//!` line; no
//! function outside a `#[cfg(test)]` item is longer than 80 lines. And the map of the tests
//! cannot drift: every file under `tests/` is named in `tests/README.md`. Run with
//! `cargo test --test architecture -- --nocapture` to print the import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that wire the rest together: they may import anything, and nothing in the core
/// imports them (the exporter serves HTTP and renders metrics: it is edge too; `fuzzing` hands
/// fuzzers' bytes to every parser, the cli's and the exporter's included).
const EDGE: [&str; 6] = ["main", "lib", "commands", "options", "exporter", "fuzzing"];

/// Top-level module → the top-level modules its non-test code names (`crate::x`).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let list = files.entry(name).or_default();
        if path.is_dir() {
            rust_files(&path, list);
        } else if path.extension().is_some_and(|e| e == "rs") {
            list.push(path);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(module, paths)| {
            let mut deps = BTreeSet::new();
            for p in paths {
                let text = std::fs::read_to_string(p).expect("read");
                let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
                for name in crate_paths(code) {
                    if modules.contains(&name) && name != *module {
                        deps.insert(name);
                    }
                }
            }
            (module.clone(), deps)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first segment after every `crate::`, including each name of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names only: those after `{` or a comma at nesting depth 0, up to the
            // brace that closes the group.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        names.push(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(rest));
        }
    }
    names
}

/// The circles of the graph (strongly connected components of more than one module).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // A small graph: two modules share a circle when each reaches the other.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for d in g.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    };
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for m in g.keys() {
        let mut circle: Vec<String> = reach(m)
            .into_iter()
            .filter(|d| reach(d).contains(m))
            .collect();
        if circle.len() > 1 {
            circle.sort();
            found.insert(circle);
        }
    }
    found.into_iter().collect()
}

#[test]
fn the_top_level_modules_import_each_other_without_a_circle() {
    let g = graph();
    println!("top-level import graph of src/ (non-test code):");
    for (m, deps) in &g {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("  {m} -> {}", deps.join(" "));
    }
    assert!(g.len() > 10, "the graph was not read: {g:?}");
    assert_eq!(circles(&g), Vec::<Vec<String>>::new(), "circles in {g:#?}");
}

#[test]
fn options_and_renderers_are_imported_only_by_the_edge() {
    let g = graph();
    for (m, deps) in &g {
        if EDGE.contains(&m.as_str()) || m == "render" {
            continue;
        }
        for edge_only in ["options", "cli", "render", "commands"] {
            assert!(
                !deps.contains(edge_only),
                "the core module {m} imports {edge_only}: hand it what it needs instead"
            );
        }
    }
    assert!(g["commands"].contains("render"), "the check reads imports");
}

#[test]
fn no_dead_code_allowance_hides_unused_code() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(
            !text.contains("allow(dead_code") && !text.contains("allow(unused"),
            "{} allows dead code",
            f.display()
        );
    }
}

#[test]
fn every_module_of_src_opens_with_what_it_owns() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for f in files {
        // A `tests.rs` is the test module of its directory's `mod.rs`, which says it all.
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(
            text.starts_with("//!"),
            "{} does not open with a `//!` line saying what it owns",
            f.display()
        );
    }
}

#[test]
fn the_import_reader_reads_groups_and_paths() {
    let code =
        "use crate::{collect::{self, Kernel}, model::Scope};\nlet x = crate::render::text();";
    assert_eq!(crate_paths(code), ["collect", "model", "render"]);
    let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .iter()
        .map(|(m, d)| (m.to_string(), BTreeSet::from([d.to_string()])))
        .collect();
    assert_eq!(circles(&g), [vec!["a", "b", "c"]]);
}

/// The most lines a function of `src/` may take, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 80;

/// `text` with the insides of comments, strings and character literals blanked (newlines
/// kept), so braces and keywords left are code's. Lifetimes (`'a`) are code.
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            // Block comments nest.
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if c[i] == 'r' && !prev_ident && matches!(c.get(i + 1), Some('"' | '#')) {
            // A raw string, r"…" or r#"…"#: no escapes, ends at a quote and as many hashes.
            let hashes = c[i + 1..].iter().take_while(|ch| **ch == '#').count();
            if c.get(i + 1 + hashes) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.push('"');
            i += 2 + hashes;
            while i < c.len() {
                if c[i] == '"'
                    && c[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|ch| **ch == '#')
                        .count()
                        == hashes
                {
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
            out.push('"');
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            // A character literal, '{' or '\''; a lifetime has no closing quote.
            out.push('\'');
            i += 1;
            if c.get(i) == Some(&'\\') {
                out.push(' ');
                i += 1;
            }
            while i < c.len() && c[i] != '\'' {
                blank(&mut out, c[i]);
                i += 1;
            }
            out.push('\'');
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The index of the brace closing the one at `open`, in code (`code_only`).
fn closing(code: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (i, b) in code.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Every function with a body outside `#[cfg(test)]` items: (line of `fn`, name, lines from
/// the `fn` line to the closing brace).
fn functions(text: &str) -> Vec<(usize, String, usize)> {
    let code = code_only(text);
    let b = code.as_bytes();
    let line = |i: usize| 1 + b[..i].iter().filter(|c| **c == b'\n').count();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // A `#[cfg(test)]` item ends at its first `;` (a `use`) or the brace closing its body.
    let mut tests = Vec::new();
    for (at, _) in code.match_indices("#[cfg(test)]") {
        if let Some(end) = code[at..].find(['{', ';']).map(|e| at + e) {
            tests.push(at..if b[end] == b'{' { closing(b, end) } else { end });
        }
    }
    let mut found = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        if (at > 0 && ident(b[at - 1])) || tests.iter().any(|t| t.contains(&at)) {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // a type, `fn(u32) -> u32`
        }
        // The body's brace, unless a `;` outside brackets ends a declaration first.
        let mut depth = 0i32;
        let mut body = None;
        for (i, c) in b.iter().enumerate().skip(at) {
            match c {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => break,
                b'{' if depth == 0 => {
                    body = Some(i);
                    break;
                }
                _ => {}
            }
        }
        if let Some(open) = body {
            let start = line(at);
            found.push((start, name, line(closing(b, open)) - start + 1));
        }
    }
    found
}

#[test]
fn no_function_in_src_is_longer_than_the_limit() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    let mut long = Vec::new();
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for (line, name, len) in functions(&text) {
            seen += 1;
            if len > MAX_FN_LINES {
                let f = f.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(f);
                long.push(format!("{}:{line}: fn {name}, {len} lines", f.display()));
            }
        }
    }
    assert!(seen > 500, "the functions were not read: {seen}");
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them into named steps):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_function_reader_skips_strings_comments_and_tests() {
    let text = r##"
fn short(x: [u8; 2]) -> char {
    let s = "}{ fn not_one() {";
    let c = '}';
    /* } /* nested { */ } */
    // fn neither() {
    let r = r#"\" fn raw() {"#;
    let _: fn(u32) -> u32 = |x| x;
    '{'
}

trait T<'a> {
    fn declared(&self) -> &'a str;
    fn given(&self) -> char {
        '\''
    }
}

#[cfg(test)]
mod tests {
    fn hidden() {}
}
"##;
    let found = functions(text);
    let found: Vec<(usize, &str, usize)> = found
        .iter()
        .map(|(l, n, len)| (*l, n.as_str(), *len))
        .collect();
    assert_eq!(found, [(2, "short", 9), (14, "given", 3)]);
}

#[test]
fn every_file_under_tests_is_named_in_the_readme() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let readme = std::fs::read_to_string(tests.join("README.md")).expect("tests/README.md");
    let mut files = Vec::new();
    all_files(&tests, &mut files);
    let mut missing = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&tests)
            .expect("under tests/")
            .to_string_lossy();
        if rel != "README.md" && !readme.contains(&format!("`{rel}`")) {
            missing.push(rel.into_owned());
        }
    }
    assert!(files.len() > 20, "tests/ was not read: {files:?}");
    assert!(
        missing.is_empty(),
        "tests/README.md does not name {missing:?}: give each a row (or a line) saying what it holds"
    );
    // And the other way: every file the table names exists.
    for row in readme.lines().filter_map(|l| l.strip_prefix("| `")) {
        let name = row.split('`').next().unwrap_or_default();
        assert!(
            tests.join(name).is_file(),
            "tests/README.md names `{name}`, which is not in tests/"
        );
    }
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The server programs whose knowledge lives in `src/doctor/runtime/` alone (STYLE §8): no
/// string literal of shipped code elsewhere in `src/` names one. Test modules may: their data
/// are real servers' command lines and configuration files.
const RUNTIME_NAMES: &[&str] = &[
    "nginx", "php-fpm", "gunicorn", "uwsgi", "uvicorn", "haproxy", "postgres", "redis", "tomcat",
    "envoy", "apache", "node.js", "java", "lighttpd",
];

/// The contents of every string literal of `text` (plain, byte and raw strings), each with its
/// line; comments, character literals and lifetimes skipped.
fn string_literals(text: &str) -> Vec<(usize, String)> {
    let b = text.as_bytes();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
                i += 2;
                continue;
            }
            // A character literal ('x', '\n', '"'), not a lifetime ('a).
            b'\'' if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'#' | b'"'))
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) == Some(&b'"') {
                    let start = i + 2 + hashes;
                    let close = format!("\"{}", "#".repeat(hashes));
                    let end = text[start..].find(&close).map_or(b.len(), |e| start + e);
                    out.push((line, text[start..end].to_string()));
                    line += text[start..end].matches('\n').count();
                    i = end + close.len();
                    continue;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let s = &text[start..i.min(b.len())];
                out.push((line, s.to_string()));
                line += s.matches('\n').count();
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[test]
fn no_runtime_is_named_outside_the_runtime_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    let shipped = |f: &&PathBuf| {
        !f.starts_with(src.join("doctor/runtime"))
            && f.file_name().is_none_or(|n| n != "tests.rs")
            && !f.components().any(|c| c.as_os_str() == "tests")
    };
    for f in files.iter().filter(shipped) {
        let text = std::fs::read_to_string(f).expect("read");
        let tests = test_lines(&text);
        for (line, s) in string_literals(&text) {
            if tests.iter().any(|t| t.contains(&line)) {
                continue;
            }
            let lower = s.to_lowercase();
            for name in RUNTIME_NAMES.iter().filter(|n| lower.contains(**n)) {
                found.push(format!("{}:{line}: {name} in {s:?}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "runtime knowledge belongs to src/doctor/runtime/ (one value per runtime):\n{}",
        found.join("\n")
    );
}

/// The lines of every `#[cfg(test)]` item: to its first `;` (a `use`, a `mod x;`) or the brace
/// closing its body.
fn test_lines(text: &str) -> Vec<std::ops::RangeInclusive<usize>> {
    let code = code_only(text);
    let b = code.as_bytes();
    let line = |i: usize| 1 + b[..i].iter().filter(|c| **c == b'\n').count();
    code.match_indices("#[cfg(test)]")
        .filter_map(|(at, _)| {
            let end = code[at..].find(['{', ';']).map(|e| at + e)?;
            let end = if b[end] == b'{' { closing(b, end) } else { end };
            Some(line(at)..=line(end))
        })
        .collect()
}

#[test]
fn the_string_reader_finds_literals_and_skips_the_rest() {
    let code = "// \"nginx\" in a comment\nlet a = 'x'; let b: &'a str = \"one \\\"q\\\"\";\n/* \"no\" */ let c = r#\"raw \"two\"\"#; let d = '\"';";
    let got: Vec<String> = string_literals(code).into_iter().map(|(_, s)| s).collect();
    assert_eq!(got, ["one \\\"q\\\"", "raw \"two\""]);
}
