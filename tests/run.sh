#!/usr/bin/env bash
# confab's whole test suite, from a fresh clone:
#   1. installs the JavaScript contract-test client (socket.io-client, pinned
#      by tests/js/package-lock.json),
#   2. builds the workspace once (the multi-process test runs its binaries),
#   3. runs every Rust test and, through them, every JavaScript suite,
#   4. prints which tests were skipped and why, and which JavaScript tests
#      were flaky or failed (tests/README.md says what each line means).
# PostgreSQL and Redis runs are included when DATABASE_URL / REDIS_URL are
# set (see the README); without them they are skipped, and listed at the end.
# Under CI=true a skip is a failure. The exit status is the test run's.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js 20+ and npm are needed for the contract tests (e.g. apt-get install nodejs npm)" >&2
  exit 1
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

# Tests append their SKIP, FLAKY and FAIL lines here (tests/src/skip.rs);
# nextest shows no output of tests that pass, so this is where skips show.
if [ -z "${CONFAB_TEST_REPORT:-}" ]; then
  CONFAB_TEST_REPORT="$(mktemp -t confab-test-report.XXXXXX)"
  trap 'rm -f "$CONFAB_TEST_REPORT"' EXIT
fi
export CONFAB_TEST_REPORT
: >"$CONFAB_TEST_REPORT"

cargo build --workspace --bins --locked

status=0
if cargo nextest --version >/dev/null 2>&1; then
  # End-to-end suites boot a whole system per test on a small machine; a
  # test that fails once and then passes is reported as FLAKY, not hidden.
  cargo nextest run --workspace --locked --no-fail-fast --retries 1 || status=$?
else
  cargo test --workspace --locked --no-fail-fast || status=$?
fi

echo
echo "──── test report ────"
if grep -q '^SKIP' "$CONFAB_TEST_REPORT"; then
  echo "skipped (set the variable named to run them):"
  grep '^SKIP' "$CONFAB_TEST_REPORT" | sort -u | sed 's/^/  /'
else
  echo "no test was skipped"
fi
if grep -q '^FLAKY' "$CONFAB_TEST_REPORT"; then
  echo "flaky (failed once, passed when re-run):"
  grep '^FLAKY' "$CONFAB_TEST_REPORT" | sed 's/^/  /'
fi
if grep -q '^FAIL' "$CONFAB_TEST_REPORT"; then
  echo "JavaScript tests that failed twice in one run (nextest's summary above says whether a retry passed):"
  grep '^FAIL' "$CONFAB_TEST_REPORT" | sed 's/^/  /'
fi
if [ "$status" -ne 0 ]; then
  echo "the test run failed (exit status $status)"
fi
exit "$status"
