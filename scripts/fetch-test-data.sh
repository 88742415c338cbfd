#!/bin/sh
# Fetches the JSON-Schema-Test-Suite (MIT) used by dataplane/schema's conformance test.
# It ships inside the source distribution of the Python `jsonschema` package, so the only tool
# needed is pip. Idempotent: does nothing when the suite is already in place.
set -eu

VERSION=4.26.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/target/test-data/json-schema-test-suite"

if [ -f "$DEST/.complete-$VERSION" ]; then
    echo "test suite already present: $DEST"
    exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

if command -v pip3 >/dev/null 2>&1; then PIP=pip3; else PIP=pip; fi
"$PIP" download --quiet --no-deps --no-binary :all: "jsonschema==$VERSION" -d "$WORK"
tar -xzf "$WORK/jsonschema-$VERSION.tar.gz" -C "$WORK"
SRC="$WORK/jsonschema-$VERSION/json"
if [ ! -d "$SRC/tests" ] || [ ! -d "$SRC/remotes" ]; then
    echo "error: $SRC has no tests/ or remotes/; the sdist layout changed" >&2
    exit 1
fi

rm -rf "$DEST"
mkdir -p "$DEST"
cp -R "$SRC/tests" "$SRC/remotes" "$DEST/"
[ -f "$SRC/LICENSE" ] && cp "$SRC/LICENSE" "$DEST/"
touch "$DEST/.complete-$VERSION"
echo "test suite installed: $DEST"
