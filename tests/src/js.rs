//! Runs a JavaScript suite (`tests/js/*.test.mjs`) with node's test runner
//! and reports each of its tests as its own result.
//!
//! One Rust test runs a whole suite against one booted system (booting per
//! JavaScript test would cost more than the tests), so this runner does
//! what a per-test harness would:
//!
//! * prints one line per JavaScript test — `PASS`, `FAIL` or `FLAKY`, with
//!   the suite, its `describe` names and its own name — read from a small
//!   reporter (`tests/js/report.mjs`) rather than from human-readable output;
//! * requires the run to be complete: every test that exists ran (none
//!   skipped, none a todo, and at least as many as the file declares), and
//!   a name filter that matches nothing fails;
//! * re-runs the failed tests once, by name, against the same system: one
//!   that passes then is reported `FLAKY <suite> › <test>` (the suite still
//!   passes), one that fails again fails the suite with its name and error.
//!   `FLAKY` and `FAIL` lines also go to the run's report
//!   ([`crate::skip::report`]), which `tests/run.sh` prints at the end.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// How long one node run of a suite may take.
const SUITE_DEADLINE: Duration = Duration::from_secs(420);

/// `tests/js`, where the JavaScript suites and their `node_modules` live.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Where a suite runs and what it may reach.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The edge, e.g. `http://127.0.0.1:41234`.
    pub url: &'a str,
    /// More environment for the suite, e.g. `CONFAB_URL2` (a second edge).
    pub env: &'a [(&'static str, String)],
    pub jwt_secret: &'a str,
    /// The harness's control server (stop/start chat-service), if any.
    pub control_url: Option<&'a str>,
    /// presence-service's typing TTL in ms, passed as `CONFAB_TYPING_TTL_MS`.
    pub typing_ttl_ms: u64,
}

/// One finished test (or suite) as the reporter saw it.
#[derive(Debug, Clone)]
struct Outcome {
    /// `describe` names, then the test's own name.
    path: Vec<String>,
    suite: bool,
    status: String,
    reason: String,
    error: String,
    ms: u64,
}

impl Outcome {
    fn name(&self) -> String {
        self.path.join(" › ")
    }
}

/// What one node run produced.
struct Run {
    outcomes: Vec<Outcome>,
    /// node's own count of tests ("tests N"), if it printed one.
    node_count: Option<usize>,
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `suite` against `target`; `name_pattern` (a node
/// `--test-name-pattern`) limits it to the tests whose own names match.
///
/// # Panics
///
/// When a test fails twice, when the run is incomplete (a test skipped, a
/// todo, fewer tests than the file declares, a filter matching nothing), or
/// when node cannot run the suite.
pub async fn run_suite(suite: &str, target: Target<'_>, name_pattern: Option<&str>) {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "socket.io-client is not installed: run `npm ci --prefix tests/js` (the test command does)"
    );
    let patterns: Vec<String> = name_pattern.into_iter().map(str::to_string).collect();
    let first = run_node(&dir, suite, target, &patterns).await;
    let mut problems = completeness(&dir, suite, &first, name_pattern.is_some());

    let failed: Vec<&Outcome> = first
        .outcomes
        .iter()
        .filter(|o| o.status == "fail")
        .collect();
    // A suite (describe) fails on its own only for a hook or a crash; tests
    // failing inside it are reported, and re-run, one by one.
    let failed_tests: Vec<&Outcome> = failed.iter().copied().filter(|o| !o.suite).collect();
    let failed_suites: Vec<&Outcome> = failed
        .iter()
        .copied()
        .filter(|o| o.suite && !o.error.contains("subtestsFailed"))
        .collect();
    if !first.success && failed.is_empty() {
        problems.push(format!(
            "node exited with a failure but reported no failed test:\n{}\n{}",
            first.stdout, first.stderr
        ));
    }

    // Re-run the failed tests once, by their own names.
    let mut again = None;
    if !failed_tests.is_empty() {
        let retry: Vec<String> = failed_tests
            .iter()
            .map(|o| format!("^{}$", regex_escape(o.path.last().unwrap())))
            .collect();
        again = Some(run_node(&dir, suite, target, &retry).await);
    }

    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for o in first.outcomes.iter().filter(|o| !o.suite) {
        let name = format!("{suite} › {}", o.name());
        match o.status.as_str() {
            "pass" => lines.push(format!("PASS  {name} ({} ms)", o.ms)),
            "skip" | "todo" => {
                lines.push(format!("{}  {name}: {}", o.status.to_uppercase(), o.reason))
            }
            _ => {
                let second = again
                    .as_ref()
                    .and_then(|r| r.outcomes.iter().find(|x| !x.suite && x.path == o.path));
                match second {
                    Some(s) if s.status == "pass" => {
                        let first_error = o.error.lines().next().unwrap_or("");
                        let line = format!("FLAKY {name} (failed once: {first_error})");
                        crate::skip::report(&line);
                        lines.push(line);
                    }
                    _ => {
                        let line = format!("FAIL  {name}");
                        crate::skip::report(&line);
                        lines.push(line);
                        let error = second.map_or(&o.error, |s| &s.error);
                        failures.push(format!("{name}\n{}", indent(error)));
                    }
                }
            }
        }
    }
    for o in failed_suites {
        let name = format!("{suite} › {} (hook or crash)", o.name());
        let line = format!("FAIL  {name}");
        crate::skip::report(&line);
        lines.push(line);
        failures.push(format!("{name}\n{}", indent(&o.error)));
    }
    println!("{}", lines.join("\n"));

    if !failures.is_empty() || !problems.is_empty() {
        eprintln!(
            "---- node output of the first run ----\n{}\n{}",
            first.stdout, first.stderr
        );
        if let Some(r) = &again {
            eprintln!(
                "---- node output of the re-run ----\n{}\n{}",
                r.stdout, r.stderr
            );
        }
        let mut message = String::new();
        if !failures.is_empty() {
            message += &format!(
                "{} JavaScript test(s) of {suite} failed (twice):\n\n{}\n",
                failures.len(),
                failures.join("\n\n")
            );
        }
        if !problems.is_empty() {
            message += &format!(
                "the run of {suite} is incomplete:\n  {}\n",
                problems.join("\n  ")
            );
        }
        panic!("{message}");
    }
}

/// What makes a run incomplete: skips, todos, nothing run, fewer tests
/// than the file declares, or a count that disagrees with node's.
fn completeness(dir: &Path, suite: &str, run: &Run, filtered: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let filtered_out = |o: &Outcome| filtered && o.reason == "test name does not match pattern";
    for o in &run.outcomes {
        if (o.status == "skip" || o.status == "todo") && !filtered_out(o) {
            problems.push(format!(
                "{} {} '{}' ({}): every test must run here",
                o.status,
                if o.suite { "suite" } else { "test" },
                o.name(),
                if o.reason.is_empty() {
                    "no reason given"
                } else {
                    &o.reason
                }
            ));
        }
    }
    let tests: Vec<&Outcome> = run.outcomes.iter().filter(|o| !o.suite).collect();
    let ran = tests
        .iter()
        .filter(|o| o.status == "pass" || o.status == "fail")
        .count();
    if ran == 0 {
        problems.push(if filtered {
            "the name filter matched no test".to_string()
        } else {
            "no test ran".to_string()
        });
    }
    if let Some(n) = run.node_count
        && n != tests.len()
    {
        problems.push(format!(
            "node counted {n} tests but reported {}: the reporter missed some",
            tests.len()
        ));
    }
    if !filtered {
        let declared = declared_tests(&dir.join(suite));
        if tests.len() < declared {
            problems.push(format!(
                "{} tests ran but the file declares at least {declared}",
                tests.len()
            ));
        }
    }
    problems
}

/// How many `test(` calls start a line of the suite's source: a lower
/// bound of its tests (a `test(` in a loop makes several).
fn declared_tests(path: &Path) -> usize {
    let source =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    source
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("test(") || l.starts_with("test.") || l.starts_with("it(")
        })
        .count()
}

async fn run_node(dir: &Path, suite: &str, target: Target<'_>, patterns: &[String]) -> Run {
    let results = tempfile::NamedTempFile::new().expect("a temporary file for the reporter");
    let mut cmd = tokio::process::Command::new("node");
    // No single test may hang the suite: each gets 60 s at most.
    cmd.current_dir(dir)
        .arg("--test")
        .arg("--test-timeout=60000")
        .arg("--test-reporter=spec")
        .arg("--test-reporter-destination=stdout")
        .arg("--test-reporter=./report.mjs")
        .arg(format!(
            "--test-reporter-destination={}",
            results.path().display()
        ));
    for p in patterns {
        cmd.arg(format!("--test-name-pattern={p}"));
    }
    cmd.arg(suite)
        .env("CONFAB_URL", target.url)
        .envs(target.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CONFAB_JWT_SECRET", target.jwt_secret)
        .env("CONFAB_CONTROL_URL", target.control_url.unwrap_or(""))
        .env("CONFAB_TYPING_TTL_MS", target.typing_ttl_ms.to_string())
        .env("CONFAB_HEARTBEAT_MS", crate::app::HEARTBEAT_MS.to_string())
        .env(
            "CONFAB_CALL_RING_TIMEOUT_MS",
            crate::app::CALL_TIMERS.ring_timeout_ms.to_string(),
        )
        .env(
            "CONFAB_CALL_MAX_DURATION_MS",
            crate::app::CALL_TIMERS.max_duration_ms.to_string(),
        )
        .env(
            "CONFAB_CALL_DISCONNECT_GRACE_MS",
            crate::app::CALL_TIMERS.disconnect_grace_ms.to_string(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SUITE_DEADLINE, cmd.output())
        .await
        .unwrap_or_else(|_| {
            panic!("the JavaScript suite {suite} ran for more than {SUITE_DEADLINE:?}")
        })
        .expect("node could not be started: is Node.js installed?");
    let text = std::fs::read_to_string(results.path()).unwrap_or_default();
    let mut outcomes = Vec::new();
    let mut node_count = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("unreadable reporter line {line:?}: {e}"));
        if let Some(d) = v["diagnostic"].as_str() {
            if let Some(n) = d.strip_prefix("tests ") {
                node_count = n.trim().parse().ok();
            }
            continue;
        }
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        outcomes.push(Outcome {
            path: v["path"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().unwrap_or("?").to_string())
                        .collect()
                })
                .unwrap_or_default(),
            suite: v["kind"] == "suite",
            status: s("status"),
            reason: s("reason"),
            error: s("error"),
            ms: v["ms"].as_u64().unwrap_or(0),
        });
    }
    Run {
        outcomes,
        node_count,
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `s` as a JavaScript regular expression matching exactly `s`.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_regex_metacharacter() {
        assert_eq!(
            regex_escape("a (b) c's [d] 30/min.*"),
            r"a \(b\) c's \[d\] 30/min\.\*"
        );
    }
}
