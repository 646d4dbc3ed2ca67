#!/usr/bin/env bash
# Starts a single OpenSearch node (pom.xml's versions) on 127.0.0.1:PORT with the
# ML Commons settings our rerank stage needs, as an unprivileged user, in the
# background, and waits (at most 120 s) until it is healthy.
# Usage: start.sh [PORT]   (default 9200)
# Prints "RUN_DIR URL"; stop.sh RUN_DIR stops it and removes RUN_DIR.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=${1:-9200}
java_home=${OPENSEARCH_JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
[ -x "$java_home/bin/java" ] || { echo "start.sh: no Java (apt-get install openjdk-17-jre-headless, or set OPENSEARCH_JAVA_HOME)" >&2; exit 1; }
cache=$("$here/fetch.sh")
version=2.19.1
home=$cache/opensearch-$version

# The node with its plugins is unpacked once into the cache; every run reads it
# there and keeps its configuration, data and logs in its own RUN_DIR.
if [ ! -d "$home" ]; then
	tmp=$(mktemp -d "$cache/unpack.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	unzip -q "$cache/zips/opensearch-$version.zip" -d "$tmp"
	t=$tmp/opensearch-$version
	for p in opensearch-job-scheduler opensearch-knn opensearch-ml-plugin neural-search; do
		mkdir -p "$t/plugins/$p"
		unzip -q "$cache/zips/$p-$version.0.zip" -d "$t/plugins/$p"
	done
	# knn extends lang-painless, which the integ-test distribution lacks; knn
	# loads without it (opensearch-plugin install would refuse it, hence unzip).
	sed -i 's/^extended\.plugins=.*/extended.plugins=/' "$t/plugins/opensearch-knn/plugin-descriptor.properties"
	chmod -R a+rX "$t"
	mv "$t" "$home"
	rm -rf "$tmp"
	trap - EXIT
fi

run=$(mktemp -d /tmp/rerank-opensearch-node.XXXXXX)
chmod 755 "$run"
# The cache may sit where the node's user cannot reach (/root): the run gets
# hard links to it (a copy across file systems).
cp -al "$home" "$run/home" 2>/dev/null || cp -a "$home" "$run/home"
cp -r "$home/config" "$run/config"
mkdir -p "$run/data" "$run/logs" "$run/tmp"
cat >> "$run/config/opensearch.yml" <<YML
cluster.name: rerank-test
node.name: rerank-test-node
path.data: $run/data
path.logs: $run/logs
network.host: 127.0.0.1
http.port: $port
discovery.type: single-node
cluster.routing.allocation.disk.threshold_enabled: false
plugins.ml_commons.only_run_on_ml_node: false
plugins.ml_commons.trusted_connector_endpoints_regex: ["^http://127\\\\.0\\\\.0\\\\.1:[0-9]+/.*\$"]
plugins.ml_commons.connector.private_ip_enabled: true
plugins.ml_commons.native_memory_threshold: 100
plugins.ml_commons.jvm_heap_memory_threshold: 100
YML
# Heap 1 GB; the GC log and crash files go to RUN_DIR (the defaults are relative to the home).
sed -i "s/^-Xms.*/-Xms1g/; s/^-Xmx.*/-Xmx1g/; s#logs/#$run/logs/#g; s#HeapDumpPath=data#HeapDumpPath=$run/data#" "$run/config/jvm.options"

# OpenSearch refuses to run as root.
as=()
if [ "$(id -u)" = 0 ]; then
	chown -R nobody:nogroup "$run/config" "$run/data" "$run/logs" "$run/tmp"
	chown nobody:nogroup "$run" "$run/home"
	as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
# setsid: the node leads its own process group, which stop.sh kills.
OPENSEARCH_JAVA_HOME=$java_home OPENSEARCH_PATH_CONF=$run/config OPENSEARCH_TMPDIR=$run/tmp \
	setsid "${as[@]}" "$run/home/bin/opensearch" >"$run/stdout.log" 2>&1 </dev/null &
echo $! >"$run/pid"
# With RERANK_OPENSEARCH_OWNER set to a pid (the Go tests set their own), the
# node is stopped when that process is gone, even if it was killed before it
# could run stop.sh.
if [ -n "${RERANK_OPENSEARCH_OWNER:-}" ]; then
	owner=$RERANK_OPENSEARCH_OWNER
	setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 2; done; [ -d "$2" ] && "$3" "$2"' \
		watch "$owner" "$run" "$here/stop.sh" >/dev/null 2>&1 </dev/null &
fi

url=http://127.0.0.1:$port
for _ in $(seq 240); do
	if curl -fsS "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
		echo "$run $url"
		exit 0
	fi
	if ! kill -0 "$(cat "$run/pid")" 2>/dev/null; then
		echo "start.sh: the node exited; its log:" >&2
		tail -n 40 "$run/stdout.log" >&2
		rm -rf "$run"
		exit 1
	fi
	sleep 0.5
done
echo "start.sh: node not healthy after 120 s; log tail:" >&2
tail -n 40 "$run/stdout.log" >&2
"$here/stop.sh" "$run"
exit 1
