#!/bin/sh
# Builds the reference oracle for vigil-detect's tests/reference.rs: libinjection's C library
# (3.9.2, BSD-3-Clause), taken from the source distribution of the Python package
# `libinjection-python`, which carries libinjection's C sources, compiled with reference/compare.c.
# Not committed; needs pip and a C compiler. Idempotent.
#
# Then: VIGIL_LIBINJECTION_REF=target/test-data/libinjection-ref/compare cargo test -p vigil-detect
set -eu

PACKAGE=libinjection-python
VERSION=1.1.6
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEST="$ROOT/target/test-data/libinjection-ref"

if [ -x "$DEST/compare" ] && [ -f "$DEST/.complete-$VERSION" ]; then
    echo "reference already built: $DEST/compare"
    exit 0
fi

CC=${CC:-cc}
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "error: a C compiler is needed (apt-get install gcc)" >&2
    exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

# pip prepares an sdist's metadata even when only downloading it; this one needs `wheel` for
# that, so download from a throwaway virtualenv that has it.
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet wheel setuptools
"$WORK/venv/bin/pip" download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "$PACKAGE==$VERSION" -d "$WORK"
tar -xzf "$WORK/$PACKAGE-$VERSION.tar.gz" -C "$WORK"
SRC="$WORK/$PACKAGE-$VERSION/libinjection/src"
if [ ! -f "$SRC/libinjection_sqli.c" ] || [ ! -f "$SRC/libinjection_xss.c" ]; then
    echo "error: $PACKAGE $VERSION has no libinjection/src/*.c; the sdist layout changed" >&2
    exit 1
fi

mkdir -p "$DEST"
"$CC" -O2 -I"$SRC" -o "$DEST/compare" "$HERE/reference/compare.c" \
    "$SRC/libinjection_sqli.c" "$SRC/libinjection_xss.c" "$SRC/libinjection_html5.c"
cp "$SRC/COPYING" "$DEST/COPYING"
touch "$DEST/.complete-$VERSION"
echo "reference built: $DEST/compare"
