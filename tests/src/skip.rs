//! Tests that cannot run on this machine, said out loud.
//!
//! Some tests need a service the machine may not have: PostgreSQL
//! (`DATABASE_URL`) or Redis (`REDIS_URL`). Without it such a test cannot
//! prove anything, so it must not look like a pass:
//!
//! * it prints `SKIP <binary>::<test>: <reason>` on stderr, and appends the
//!   same line to the file named by `CONFAB_TEST_REPORT` when that is set
//!   (`tests/run.sh` sets it and prints the file's skips at the end of the
//!   run, since nextest shows no output of tests that pass);
//! * under `CI=true` it fails instead: CI provides every service, so a
//!   missing one is a broken CI setup, not a reason to skip.
//!
//! The JavaScript-suite runner ([`crate::js`]) appends its `FLAKY` and
//! `FAIL` lines to the same report through [`report`].

use std::io::Write;

/// The value of the environment variable `var`, or `None` after reporting
/// this test as skipped because `var` is unset (or empty).
///
/// `what` says what the test would have run, e.g. "the PostgreSQL run".
///
/// # Panics
///
/// When `CI=true` and `var` is unset.
pub fn required_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            skip(&format!("{var} is unset, so {what} did not run"));
            None
        }
    }
}

/// Reports the calling test as skipped for `reason` (see the module doc).
///
/// # Panics
///
/// When `CI=true`: CI must run every test.
pub fn skip(reason: &str) {
    let line = format!("SKIP {}: {reason}", current_test());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{line} — but CI=true, where every test must run (is the service configured?)");
    }
    eprintln!("{line}");
    report(&line);
}

/// Appends `line` to the run's report file (`CONFAB_TEST_REPORT`), if any.
/// Failing to write is printed, never raised: the report is for people.
pub fn report(line: &str) {
    let Ok(path) = std::env::var("CONFAB_TEST_REPORT") else {
        return;
    };
    if path.is_empty() {
        return;
    }
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = result {
        eprintln!("could not append to the test report {path}: {e}");
    }
}

/// `<binary>::<test>` for the running test, as well as it can be told.
pub fn current_test() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            // Test binaries are named `<target>-<hash>`.
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => stem,
        })
        .unwrap_or_else(|| "?".into());
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .or_else(|| std::env::var("NEXTEST_TEST_NAME").ok())
        .unwrap_or_else(|| "?".into());
    format!("{binary}::{test}")
}
