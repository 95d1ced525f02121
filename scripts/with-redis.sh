#!/usr/bin/env bash
# with-redis.sh CMD...: run CMD with a Redis for the integration tests.
#
# REDIS_ADDR set: use that Redis (tests lease only empty databases and never
# flush it). Otherwise start a private redis-server on a free loopback port
# with 256 databases, installing redis-server with apt-get when it is missing,
# and stop it when CMD exits. Exports CIOQ_TEST_REDIS_ADDR (and
# CIOQ_TEST_REDIS_OWNED=1 for the private one).
set -euo pipefail

ping_redis() { # host port
  ( exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ "$reply" == "+PONG"* ]] ) 2>/dev/null
}

if [[ -n "${REDIS_ADDR:-}" ]]; then
  host=${REDIS_ADDR%:*}; port=${REDIS_ADDR##*:}
  if ! ping_redis "$host" "$port"; then
    echo "with-redis: REDIS_ADDR=$REDIS_ADDR does not answer PING" >&2
    exit 1
  fi
  echo "with-redis: using the Redis at REDIS_ADDR=$REDIS_ADDR (only empty databases are used; nothing is flushed)" >&2
  export CIOQ_TEST_REDIS_ADDR=$REDIS_ADDR
  exec "$@"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "with-redis: redis-server not found; installing it with apt-get" >&2
  if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >&2
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/cioq-redis.XXXXXX")
port=""
for _ in $(seq 1 50); do
  p=$(( 20000 + RANDOM % 40000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || { echo "with-redis: no free port found" >&2; exit 1; }

redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
  --databases 256 --maxmemory-policy noeviction --daemonize no \
  --logfile "$dir/redis.log" &
rpid=$!
cleanup() { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  ping_redis 127.0.0.1 "$port" && break
  sleep 0.1
done
ping_redis 127.0.0.1 "$port" || { echo "with-redis: redis-server did not start:" >&2; cat "$dir/redis.log" >&2; exit 1; }
echo "with-redis: started a private redis-server on 127.0.0.1:$port (256 databases)" >&2

export CIOQ_TEST_REDIS_ADDR=127.0.0.1:$port CIOQ_TEST_REDIS_OWNED=1
"$@"
