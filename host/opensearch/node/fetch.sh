#!/usr/bin/env bash
# Fetches the pinned OpenSearch node (pom.xml) from Maven Central into the cache,
# once: a later run with all five zips present does nothing. Prints the cache dir.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${RERANK_OPENSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rerank-opensearch}
zips=$cache/zips
mkdir -p "$zips"
if [ "$(find "$zips" -name '*.zip' | wc -l)" -ge 5 ]; then echo "$cache"; exit 0; fi
command -v mvn >/dev/null || { echo "fetch.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
# Into a temporary folder first, so an interrupted download never looks complete.
tmp=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DexcludeTransitive=true \
	-DoutputDirectory="$tmp" >&2
[ "$(find "$tmp" -name '*.zip' | wc -l)" -eq 5 ] || { echo "fetch.sh: expected 5 zips in $tmp" >&2; exit 1; }
mv "$tmp"/*.zip "$zips"/
echo "$cache"
