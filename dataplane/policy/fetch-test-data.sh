#!/bin/sh
# Fetches real-world OpenAPI documents for dataplane/policy's integration test: the npm package
# `@readme/oas-examples` (petstore and larger APIs, OpenAPI 3.0 and 3.1, JSON and YAML).
# They are not committed; a fresh clone gets them here. Only `npm` is needed.
# Idempotent: does nothing when the documents are already in place.
set -eu

PACKAGE=@readme/oas-examples
VERSION=8.2.2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST="$ROOT/target/test-data/openapi/oas-examples"

if [ -f "$DEST/.complete-$VERSION" ]; then
    echo "OpenAPI examples already present: $DEST"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is needed to fetch $PACKAGE (apt-get install npm)" >&2
    exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

(cd "$WORK" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
TARBALL=$(ls "$WORK"/*.tgz)
tar -xzf "$TARBALL" -C "$WORK"
if [ ! -d "$WORK/package/3.0" ] || [ ! -d "$WORK/package/3.1" ]; then
    echo "error: $PACKAGE@$VERSION has no 3.0/ or 3.1/ folder; the package layout changed" >&2
    exit 1
fi

rm -rf "$DEST"
mkdir -p "$DEST"
cp -R "$WORK/package/." "$DEST/"
touch "$DEST/.complete-$VERSION"
echo "fetched $PACKAGE@$VERSION: $(find "$DEST" -name '*.json' -o -name '*.yaml' | wc -l) documents in $DEST"
