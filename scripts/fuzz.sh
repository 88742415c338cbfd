#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that sees attacker bytes (tests/fuzz, AFL++ through
# cargo-afl, stable Rust). Installs what it needs, builds the instrumented targets, runs them.
#
#   scripts/fuzz.sh --budget 60        every target for 60 s (CI); fails if any target crashed
#   scripts/fuzz.sh --prove            the planted bug must be found within 120 s
#   scripts/fuzz.sh --budget 600 --targets "http_head jwt" --jobs 1 --keep /var/tmp/fz
#
# Corpora start from the committed seeds (tests/fuzz/corpus/<target>) and grow in a temporary
# directory; the committed seeds are never rewritten. Needs root for the xdp target
# (BPF_PROG_TEST_RUN); without root that target is skipped with a notice.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ=$ROOT/tests/fuzz
# Instrumented builds stay in their own directory, whatever the caller's CARGO_TARGET_DIR says.
export CARGO_TARGET_DIR=$FUZZ/target

CARGO_AFL_VERSION=0.18.2
# Every target but `planted`, whose crash is the point (see --prove).
ALL_TARGETS="http_head json_schema jwt jwks openapi policy_request config xdp patch"
PROVE_BOUND=120

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

mode=budget budget=60 jobs=2 targets=$ALL_TARGETS keep=""
while [ $# -gt 0 ]; do
  case $1 in
    --budget) budget=${2:?}; shift 2 ;;
    --prove) mode=prove; shift ;;
    --targets) targets=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --keep) keep=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "fuzz: unknown argument $1" >&2; usage ;;
  esac
done
case $budget in ''|*[!0-9]*) echo "fuzz: --budget takes seconds" >&2; exit 2 ;; esac
case $jobs in ''|*[!0-9]*|0) echo "fuzz: --jobs takes a positive number" >&2; exit 2 ;; esac

log() { echo "fuzz: $*"; }

# --- What the build needs: a C toolchain for AFL++'s runtime, clang/libbpf for the XDP object.
install_packages() {
  local pkgs=(make gcc clang llvm libbpf-dev libelf-dev) missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz: missing packages ${missing[*]}; install them or run as root" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# cargo-afl builds its own AFL++ (4.40c, shipped in the crate) into ~/.local/share/afl.rs when
# it is installed; the runtime object is per rustc version, so a toolchain update rebuilds it.
install_cargo_afl() {
  if ! cargo afl --version 2>/dev/null | grep -q "^cargo-afl $CARGO_AFL_VERSION"; then
    log "installing cargo-afl $CARGO_AFL_VERSION"
    cargo install --locked --quiet "cargo-afl@$CARGO_AFL_VERSION"
  fi
  # cargo-afl refuses every subcommand but `config` until the runtime exists for this rustc.
  if cargo afl fuzz -h 2>&1 | grep -q "was not built"; then
    log "building the AFL++ runtime for $(rustc --version)"
    cargo afl config --build --force
  fi
}

install_packages
install_cargo_afl
AFL_FUZZ_VERSION=$(cargo afl fuzz -h 2>&1 | grep -o 'afl-fuzz++[0-9.a-z]*' | head -n1 || true)

# --- Build: instrumented, release (cargo-afl adds sancov, opt-level 3, debug assertions and
# overflow checks).
build_start=$(date +%s)
log "building the targets (cargo afl build --release)"
# The fuzz crate resolves its dependencies from the root lock file, so the versions fuzzed are
# the versions shipped; only the afl crate's own dependencies are added to it.
cp "$ROOT/Cargo.lock" "$FUZZ/Cargo.lock"
(cd "$FUZZ" && cargo afl build --release --bins)
build_secs=$(( $(date +%s) - build_start ))
log "build took ${build_secs}s"

# --- Running.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
# Several fuzzers share two cores with other work: no pinning.
export AFL_NO_AFFINITY=1
# The xdp target loads and verifies the BPF program before the fork server starts.
export AFL_FORKSRV_INIT_TMOUT=60000

if [ -n "$keep" ]; then
  mkdir -p "$keep"
  work=$(cd "$keep" && pwd)
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-fuzz.XXXXXX")
fi

# Runs one target for $2 seconds into $work/<target>. afl-fuzz -V stops it; `timeout` is the
# outer bound in case the fuzzer itself hangs (calibration of a slow seed, a stuck child).
run_target() {
  local t=$1 secs=$2 dict=()
  local out=$work/$t
  rm -rf "$out"
  mkdir -p "$out"
  cp -r "$FUZZ/corpus/$t" "$out/seeds"
  [ -f "$FUZZ/dict/$t.dict" ] && dict=(-x "$FUZZ/dict/$t.dict")
  # -t: an input that takes over a second is a hang (reported, not a failure);
  # -m: a runaway allocation aborts as a crash instead of taking the box's memory.
  timeout --kill-after=10 $(( secs + 120 )) \
    cargo afl fuzz -i "$out/seeds" -o "$out/afl" -V "$secs" -t 1000 -m 4096 \
      "${dict[@]}" -- "$FUZZ/target/release/$t" \
      >"$out/afl.log" 2>&1 || echo "afl-fuzz exited with $?" >>"$out/afl.log"
}

stat() { # stat <file> <key>
  sed -n "s/^$2 *: *//p" "$1" 2>/dev/null | head -n1
}

hexdump_file() {
  od -An -tx1 -v "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//' | fold -w 96
  echo
}

# Prints the target's line; returns 1 if it crashed (or did not run).
report_target() {
  local t=$1 out=$work/$1 stats=$work/$1/afl/default/fuzzer_stats
  if [ ! -f "$stats" ]; then
    printf '%-15s did not run; last lines of %s:\n' "$t" "$out/afl.log"
    tail -n 15 "$out/afl.log" 2>/dev/null | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g; s/^/    /'
    return 1
  fi
  local execs eps paths found crashes hangs stab cvg
  execs=$(stat "$stats" execs_done)
  eps=$(stat "$stats" execs_per_sec)
  paths=$(stat "$stats" corpus_count)
  found=$(stat "$stats" corpus_found)
  crashes=$(stat "$stats" saved_crashes)
  hangs=$(stat "$stats" saved_hangs)
  stab=$(stat "$stats" stability)
  cvg=$(stat "$stats" bitmap_cvg)
  printf '%-15s execs %10s  execs/s %9s  paths %5s (+%s)  crashes %s  hangs %s  stability %s  map %s\n' \
    "$t" "$execs" "$eps" "$paths" "$found" "$crashes" "$hangs" "$stab" "$cvg"
  local crashed=0 f
  for f in "$out"/afl/default/crashes/id:*; do
    [ -e "$f" ] || continue
    crashed=1
    echo "  crash: $f"
    echo "  input ($(wc -c <"$f") bytes, hex):"
    hexdump_file "$f" | sed 's/^/    /'
    echo "  replay: $FUZZ/target/release/$t < '$f'"
    # Through sh -c, so the abort is not announced by this shell as a job that died.
    sh -c 'timeout 20 "$0" <"$1" >"$2" 2>&1; exit 0' "$FUZZ/target/release/$t" "$f" "$out/replay.txt"
    grep -m3 -A2 "panicked at" "$out/replay.txt" | sed 's/^/    /' || true
  done
  return $crashed
}

can_run() {
  if [ "$1" = xdp ]; then
    if [ "$(id -u)" -ne 0 ]; then
      log "skipping xdp: BPF_PROG_TEST_RUN needs root"
      return 1
    fi
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
  fi
  [ -d "$FUZZ/corpus/$1" ] || { echo "fuzz: no target $1" >&2; exit 2; }
}

if [ "$mode" = prove ]; then
  # The planted bug (tests/fuzz/src/bin/planted.rs) sits behind six exact bytes. AFL must find
  # it within PROVE_BOUND seconds; AFL_BENCH_UNTIL_CRASH stops the fuzzer at the first crash.
  start=$(date +%s)
  AFL_BENCH_UNTIL_CRASH=1 run_target planted "$PROVE_BOUND"
  secs=$(( $(date +%s) - start ))
  if report_target planted; then
    echo "fuzz: --prove FAILED: no crash in the planted target within ${PROVE_BOUND}s" >&2
    echo "fuzz: 0 passed, 1 failed"
    exit 1
  fi
  first=$(ls "$work"/planted/afl/default/crashes/id:* | head -n1)
  if ! head -c 6 "$first" | cmp -s - <(printf 'VIGIL\177'); then
    echo "fuzz: --prove FAILED: the crash is not the planted one" >&2
    echo "fuzz: 0 passed, 1 failed"
    exit 1
  fi
  log "--prove ok: AFL found the planted bug in ${secs}s (${AFL_FUZZ_VERSION}, cargo-afl $CARGO_AFL_VERSION)"
  [ -z "$keep" ] && rm -rf "$work"
  echo "fuzz: 1 passed, 0 failed"
  exit 0
fi

runnable=()
for t in $targets; do
  can_run "$t" && runnable+=("$t")
done
log "running ${runnable[*]} for ${budget}s each, $jobs at a time, in $work"
run_start=$(date +%s)
running=0
for t in "${runnable[@]}"; do
  run_target "$t" "$budget" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
run_secs=$(( $(date +%s) - run_start ))

echo
echo "== fuzz results (${AFL_FUZZ_VERSION}, cargo-afl $CARGO_AFL_VERSION; build ${build_secs}s, runs ${run_secs}s)"
failed=()
for t in "${runnable[@]}"; do
  report_target "$t" || failed+=("$t")
done
skipped=$(( $(echo $targets | wc -w) - ${#runnable[@]} ))
summary="$(( ${#runnable[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (corpora and crashes kept in $work)" >&2
  echo "fuzz: $summary"
  exit 1
fi
[ -z "$keep" ] && rm -rf "$work"
echo "fuzz: $summary"
exit 0
