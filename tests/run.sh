#!/usr/bin/env bash
# confab's whole test suite, from a fresh clone:
#   1. installs the JavaScript contract-test client (socket.io-client, pinned
#      by tests/js/package-lock.json),
#   2. builds the workspace once (the multi-process test runs its binaries),
#   3. runs every Rust test and, through them, every JavaScript suite.
# PostgreSQL runs are included when DATABASE_URL is set (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js 20+ and npm are needed for the contract tests (e.g. apt-get install nodejs npm)" >&2
  exit 1
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

cargo build --workspace --bins --locked
if cargo nextest --version >/dev/null 2>&1; then
  # End-to-end suites boot a whole system per test on a small machine; a
  # test that fails once and then passes is reported as FLAKY, not hidden.
  cargo nextest run --workspace --locked --no-fail-fast --retries 1
else
  cargo test --workspace --locked --no-fail-fast
fi
