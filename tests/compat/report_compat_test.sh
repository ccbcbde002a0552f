#!/usr/bin/env bash
# The report formats as real consumers read them: gotestsum parses the
# test2json stream of a real run, xmllint checks the JUnit file is well
# formed and that its counts match its testcases.
# Usage: report_compat_test.sh BIN_DIR
set -euo pipefail

bin=${1:?usage: $0 BIN_DIR}/handoff-example-worker
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# A run with every outcome; it fails on purpose (exit 1).
set +e
"$bin" run selftest --json --junit "$tmp/junit.xml" >"$tmp/events.json"
status=$?
set -e
[ "$status" -eq 1 ] || fail "selftest exited $status, want 1"

# gotestsum reads go test -json; its summary counts every attempt
# (the flaky test ran twice): 11 runs, 1 skipped, 7 failed attempts.
summary=$(gotestsum --format standard-quiet --raw-command -- \
    cat "$tmp/events.json" 2>&1 | tail -n 1) || true
echo "gotestsum: $summary"
case "$summary" in
"DONE 11 tests, 1 skipped, 7 failures"*) ;;
*) fail "gotestsum summary: $summary" ;;
esac

xmllint --noout "$tmp/junit.xml" || fail "JUnit XML is not well formed"
count() {
    xmllint --xpath "$1" "$tmp/junit.xml"
}
cases=$(count 'count(//testsuite/testcase)')
[ "$cases" = "$(count 'string(//testsuite/@tests)')" ] ||
    fail "tests attribute != $cases testcases"
[ "$(count 'count(//testcase/failure)')" = \
    "$(count 'string(//testsuite/@failures)')" ] || fail "failures count"
[ "$(count 'count(//testcase/error)')" = \
    "$(count 'string(//testsuite/@errors)')" ] || fail "errors count"
[ "$(count 'count(//testcase/skipped)')" = \
    "$(count 'string(//testsuite/@skipped)')" ] || fail "skipped count"
[ "$(count 'count(//testcase[@name="test_segfault"]/error)')" = 1 ] ||
    fail "test_segfault is not an error"
[ "$(count 'count(//testcase[@name="test_check_fails"]/failure)')" = 1 ] ||
    fail "test_check_fails is not a failure"
[ "$(count 'count(//flakyFailure)')" = 1 ] || fail "no flakyFailure"
echo "ok: $cases testcases, counts match"
