//! The fuzz corpora replayed on stable: every file of `fuzz/corpus/TARGET/` and
//! `fuzz/regressions/TARGET/` through `backlogctl::fuzzing::TARGET`, the function the fuzz
//! target calls, each under `catch_unwind`. A panic (a crash, or an invariant the function
//! asserts) fails with the file's name; so does a target whose corpus is missing or empty, or
//! a fuzz target and a seam function that do not pair up, so the replay cannot check nothing.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_file_runs_without_a_panic() {
    let mut failed = Vec::new();
    for (name, run) in backlogctl::fuzzing::TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ is missing or empty: run fuzz/seed {name}"
        );
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("read a corpus file");
            // The panic message goes to stderr as usual; the file is named below.
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(
                    file.strip_prefix(fuzz_dir())
                        .unwrap_or(file)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(
        failed.is_empty(),
        "panicked on fuzz/{}",
        failed.join(", fuzz/")
    );
}

#[test]
fn every_fuzz_target_is_a_seam_function_and_the_other_way() {
    let mut targets: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    targets.sort();
    let mut seam: Vec<String> = backlogctl::fuzzing::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    seam.sort();
    assert_eq!(targets, seam, "fuzz/fuzz_targets/ against fuzzing::TARGETS");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &seam {
        let target = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("the target");
        assert!(
            target.contains(&format!("backlogctl::fuzzing::{name}(data)")),
            "fuzz_targets/{name}.rs does not call fuzzing::{name}"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}
