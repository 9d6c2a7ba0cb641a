#!/usr/bin/env bash
# Stops the redis-server that .ci/redis-up.sh started in DIR.
set -u
dir=$1
if [ -f "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
fi
