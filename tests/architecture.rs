//! The shape of `src/`, checked: the top-level modules import each other without a circle;
//! the options module (clap's flags resolved) and the renderers are imported only by the edge;
//! no `dead_code` allowance hides unused code; few functions are long. Run with
//! `cargo test --test architecture -- --nocapture` to print the import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that wire the rest together: they may import anything, and nothing in the core
/// imports them (the exporter serves HTTP and renders metrics: it is edge too).
const EDGE: [&str; 5] = ["main", "lib", "commands", "options", "exporter"];

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
