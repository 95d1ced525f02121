#!/bin/sh
# op-path-files.sh [ROOT]: the non-test Go files a newcomer reads to follow
# one op from producer.Identify to the fake Track API's ledger, in the order
# the op passes them, and their count.
#
# The path is the happy path of one identify: producer → internal/task and
# internal/taskq (the task in Redis) → worker (handler, batcher, send
# layers) → track (the v2 batch request) → track/fake (route, rate limit,
# ledger). Each hop is named by the declarations the op passes, not by file
# name, so the list stays true when code moves between files. The stores
# the send layers call (idempotency, ratelimit, breaker) sit behind small
# interfaces in worker/layers.go and are not listed.
#
# ROOT defaults to the repository this script is in.
set -eu
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# dir|declaration (an extended regex matched after "func ", "type " or "var ")
steps='
producer|\(p \*Producer\) Identify\(
producer|\(p \*Producer\) Enqueue\(
producer|\(p \*Producer\) prepare\(
track|EncodeOp\(
track|Op struct
internal/task|Encode\(
internal/task|TaskID\(
internal/task|Kind\(
producer|\(s \*redisSink\) put\(
producer|\(c \*committer\) flush\(
internal/taskq|Single\(
internal/taskq|\(w \*Writer\) Write\(
internal/taskq|\(m \*message\) encode\(
internal/taskq|enqueueScript =
worker|\(w \*Worker\) processTask\(
internal/task|FromTask\(
worker|taskItem\(
worker|\(w \*Worker\) observeTask\(
worker|laneOf\(
worker|\(b \*batcher\) submit\(
worker|\(ws \*workspace\) send\(
worker|\(ws \*workspace\) guard\(
worker|classify\(
track|\(c \*Client\) BatchEncoded\(
track|\(c \*Client\) send\(
track|Client struct
track/fake|\(s \*Server\) serveHTTP\(
track/fake|route\(
track/fake|\(s \*Server\) take\(
track/fake|\(s \*Server\) v2Batch\(
track/fake|\(s \*Server\) accept\(
track/fake|\(l \*ledger\) record\(
track/fake|\(pp people\) apply\(
'

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$steps" | while IFS='|' read -r dir decl; do
	[ -n "$dir" ] || continue
	f=$(grep -lE "^(func|type|var) $decl" "$dir"/*.go 2>/dev/null | grep -v '_test\.go$' | head -n 1 || true)
	if [ -z "$f" ]; then
		echo "op-path-files: $dir: no declaration matching '$decl'" >&2
		echo MISSING
		continue
	fi
	echo "$f"
done > "$tmp"
if grep -q '^MISSING$' "$tmp"; then
	exit 1
fi
# In the order the op reaches them, each file once.
awk '!seen[$0]++' "$tmp" > "$tmp.u"
mv "$tmp.u" "$tmp"
cat "$tmp"
echo "files: $(wc -l < "$tmp" | tr -d ' ')"
