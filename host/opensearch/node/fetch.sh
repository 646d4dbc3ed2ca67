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
# A throw-away local repository: the zips are kept once, in the cache, not
# also in ~/.m2.
mvn -q -B -f "$here/pom.xml" -Dmaven.repo.local="$tmp/m2" dependency:copy-dependencies -DexcludeTransitive=true \
	-DoutputDirectory="$tmp/zips" >&2
[ "$(find "$tmp/zips" -name '*.zip' | wc -l)" -eq 5 ] || { echo "fetch.sh: expected 5 zips in $tmp/zips" >&2; exit 1; }
mv "$tmp"/zips/*.zip "$zips"/
echo "$cache"
