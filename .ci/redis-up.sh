#!/usr/bin/env bash
# Starts a throwaway redis-server for the tests: installs it from Debian's
# packages if it is missing, binds it to 127.0.0.1 on a free port, with no
# persistence (unless SERFN_REDIS_APPENDONLY=yes), in a private directory.
# Prints the URL on the last line; the server's pid is in "$dir/redis.pid" (stop it with .ci/redis-down.sh DIR).
#
#   url=$(bash .ci/redis-up.sh /tmp/serfn-redis | tail -n 1)
set -euo pipefail

dir=${1:-$(mktemp -d /tmp/serfn-redis.XXXXXX)}
mkdir -p "$dir"

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is missing: installing it from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends redis-server >&2
    # The package starts a system service on 6379; ours runs on its own port.
    (service redis-server stop || true) >/dev/null 2>&1
fi

# SERFN_REDIS_PORT: a port to use again (a test restarting its server).
port=${SERFN_REDIS_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
# SERFN_REDIS_APPENDONLY=yes: persistence (an append-only file in DIR), for
# a test that restarts its server and expects its data back.
appendonly=${SERFN_REDIS_APPENDONLY:-no}
# SERFN_REDIS_ARGS: more options, such as a test's `--key-load-delay 500`.
# shellcheck disable=SC2086 # split into options on purpose
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly "$appendonly" \
    --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    ${SERFN_REDIS_ARGS:-} >&2
for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "redis://127.0.0.1:$port"
        exit 0
    fi
    sleep 0.05
done
echo "redis-server did not answer on port $port; its log:" >&2
cat "$dir/redis.log" >&2
exit 1
