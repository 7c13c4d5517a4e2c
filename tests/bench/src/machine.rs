//! The machine a run happened on, read from `/proc`, and the versions of what
//! ran — the first table of the report, so numbers are never read without it.

use std::process::Command;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_gb: f64,
    pub cpu_model: String,
    pub kernel: String,
    pub open_files: String,
    pub node: String,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

pub fn detect() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gb: mem_kb / 1024.0 / 1024.0,
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        open_files: first_line("sh", &["-c", "ulimit -n"]),
        node: first_line("node", &["--version"]),
    }
}

/// The current UTC time, `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

/// `abc1234` (plus `, uncommitted changes` when the tree is dirty) of the repo at `dir`.
pub fn git_describe(dir: &std::path::Path) -> String {
    let dir = dir.to_string_lossy();
    let head = first_line("git", &["-C", &dir, "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args([
            "-C",
            &dir,
            "status",
            "--porcelain",
            "-uno",
            "--",
            "proto",
            "edge",
            "chat-service",
            "presence-service",
            "call-service",
            "notify-service",
        ])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{head} with uncommitted changes")
    } else {
        head
    }
}
