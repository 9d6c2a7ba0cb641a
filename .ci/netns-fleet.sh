#!/usr/bin/env bash
# A Redis fleet on two "machines": two network namespaces, each joined to
# the root namespace through its own veth pair on a bridge, so that every
# task and result crosses a network interface.
#
#   root namespace: bridge serfn-br 10.213.77.1/24, redis-server bound to it,
#                   the driver (redis_driver)
#   serfn-w1:       veth serfn-w1-n 10.213.77.11/24, one redis_worker
#   serfn-w2:       veth serfn-w2-n 10.213.77.12/24, one redis_worker
#
# Run 1: the driver's descent on both workers; each worker's veth must carry
# the traffic of a task (the stored function, ~32 KB, goes to each worker
# that runs one) and each worker must have fetched the function.
# Run 2: 200 starting points, and worker 1 is killed with SIGKILL while it
# holds a task; worker 2 takes it over after SERFN_CLAIM_IDLE_MS and the
# driver must still get exactly the local results.
#
# Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`). If a namespace
# cannot be created: exit 1 under CI=true, else print "SKIPPED: ..." and
# exit 0. Everything it creates (namespaces, veths, bridge, processes, temp
# directory) is removed on exit, failure or interrupt. Addresses: only
# 10.213.77.0/24, assigned here.
set -euo pipefail
cd "$(dirname "$0")/.."

NS1=serfn-w1
NS2=serfn-w2
BRIDGE=serfn-br
NET=10.213.77
HOST_IP=$NET.1
CLAIM_IDLE_MS=${SERFN_CLAIM_IDLE_MS:-2000}
# The stored function of the descent (its 2,000 samples) is ~32 KB: a worker
# that ran a task has received at least this much through its veth.
MIN_TASK_BYTES=30000

ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { local d=$(($(ms) - $1)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); } # since MS
clock0=$(ms)
say() { printf '[netns-fleet %7ss] %s\n' "$(secs "$clock0")" "$*"; }
die() { say "FAIL: $*"; exit 1; }

cannot() {
    if [ "${CI:-}" = "true" ]; then
        say "FAIL (CI=true, so not skipped): $*"
        exit 1
    fi
    say "SKIPPED: $*"
    exit 0
}

if ! command -v ip >/dev/null 2>&1; then
    echo "ip (iproute2) is missing: installing it from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2; } >&2 ||
        cannot "ip (iproute2) is missing and could not be installed"
fi
command -v redis-server >/dev/null 2>&1 || {
    # redis-up.sh installs it (and starts a server we stop at once).
    d=$(mktemp -d /tmp/serfn-netns-install.XXXXXX)
    bash .ci/redis-up.sh "$d" >/dev/null && bash .ci/redis-down.sh "$d"
    rm -rf "$d"
}

# One run at a time on this machine: the names and the subnet are fixed.
mkdir -p /run/lock
exec 9>/run/lock/serfn-netns-fleet.lock
if ! flock -n 9; then
    say "waiting for another netns-fleet run (/run/lock/serfn-netns-fleet.lock)"
    flock -w 120 9 || die "another netns-fleet run holds /run/lock/serfn-netns-fleet.lock"
fi
# The lock is fd 9: every long-lived child gets "9>&-", so that a worker or
# server orphaned by a SIGKILLed run does not hold it.

# The redis-server and directory of a run that was killed with SIGKILL (we
# hold the lock, so no live run owns them).
for old in /tmp/serfn-netns.*; do
    [ -d "$old" ] || continue
    pid=$(cat "$old/redis.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
        say "stopping the redis-server (pid $pid) of a run that was killed"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$old"
done
dir=$(mktemp -d /tmp/serfn-netns.XXXXXX)
driver_pid=

# Everything running inside our namespaces is ours: the workers.
kill_workers() {
    for ns in "$NS1" "$NS2"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$driver_pid" ]; then
        kill -9 "$driver_pid" 2>/dev/null || true
    fi
    kill_workers
    if [ -f "$dir/redis.pid" ]; then
        kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    for ns in "$NS1" "$NS2"; do
        ip netns del "$ns" 2>/dev/null || true
        ip link del "$ns-h" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$dir"
    if [ "$rc" -ne 0 ]; then
        echo "netns-fleet: exit $rc; namespaces, links and processes removed" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Leftovers of a run that was killed with SIGKILL (we hold the lock, so no
# run is using them).
for ns in "$NS1" "$NS2"; do
    if ip netns list 2>/dev/null | grep -qw "^$ns"; then
        say "removing a leftover namespace $ns"
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    fi
    ip link del "$ns-h" 2>/dev/null || true
done
ip link del "$BRIDGE" 2>/dev/null || true

# 1. Can we create a network namespace here at all? (Before the build, so
# that a skip is quick.)
if ! err=$(ip netns add "$NS1" 2>&1); then
    cannot "cannot create a network namespace (ip netns add $NS1: ${err:-failed}); needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN"
fi
if ! err=$(ip netns add "$NS2" 2>&1); then
    cannot "cannot create a second network namespace (ip netns add $NS2: ${err:-failed})"
fi

# 2. The build, while the namespaces wait.
say "cargo build --release --features redis --example redis_worker --example redis_driver"
cargo build --release --features redis --example redis_worker --example redis_driver
# Wherever cargo puts them (CARGO_TARGET_DIR, a config's build.target-dir).
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
WORKER=$target/release/examples/redis_worker
DRIVER=$target/release/examples/redis_driver

# 3. The wires: a bridge in the root namespace, one veth pair per host.
if ! err=$(ip link add "$BRIDGE" type bridge 2>&1); then
    cannot "cannot create a bridge ($err)"
fi
ip addr add "$HOST_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
n=10
for ns in "$NS1" "$NS2"; do
    n=$((n + 1))
    ip link add "$ns-h" type veth peer name "$ns-n"
    ip link set "$ns-h" master "$BRIDGE"
    ip link set "$ns-h" up
    ip link set "$ns-n" netns "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$NET.$n/24" dev "$ns-n"
    ip -n "$ns" link set "$ns-n" up
done

# 4. Redis, bound to the bridge's address only.
port=$(python3 -c "import socket; s = socket.socket(); s.bind(('$HOST_IP', 0)); print(s.getsockname()[1])")
redis-server --bind "$HOST_IP" --port "$port" --protected-mode no --save '' --appendonly no \
    --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null 9>&-
URL=redis://$HOST_IP:$port
for _ in $(seq 1 100); do
    redis-cli -h "$HOST_IP" -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
done
redis-cli -h "$HOST_IP" -p "$port" ping >/dev/null || die "redis-server did not answer at $URL: $(cat "$dir/redis.log")"
for ns in "$NS1" "$NS2"; do
    for _ in $(seq 1 50); do # the bridge's ports may need a moment
        ip netns exec "$ns" redis-cli -h "$HOST_IP" -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    ip netns exec "$ns" redis-cli -h "$HOST_IP" -p "$port" ping >/dev/null ||
        die "redis at $URL is not reachable from namespace $ns"
done
say "redis-server at $URL; hosts $NS1 = $NET.11, $NS2 = $NET.12 (each behind its own veth)"

counter() { cat "/sys/class/net/$1/statistics/$2"; }

# start_worker NS PREFIX: one redis_worker inside namespace NS; its pid in
# last_pid (`ip netns exec` and `env` exec it, so it is the worker's own).
# Disowned, so that the shell does not print "Killed" when it is killed.
start_worker() {
    ip netns exec "$1" env SERFN_PREFIX="$2" SERFN_CLAIM_IDLE_MS="$CLAIM_IDLE_MS" \
        RUST_LOG=serfn=debug "$WORKER" "$URL" 2>"$dir/$1.$2.log" 9>&- &
    last_pid=$!
    disown "$last_pid"
}

# pending PREFIX [CONSUMER]: tasks read but not yet acknowledged (by CONSUMER).
pending() {
    redis-cli -h "$HOST_IP" -p "$port" XPENDING "$1:tasks" "$1:workers" - + 10000 ${2:+"$2"} |
        awk 'NR % 4 == 1' | grep -c . || true
}

wait_started() { # LOG
    for _ in $(seq 1 100); do
        grep -q "worker starting" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    die "a worker did not start: $(cat "$1")"
}

# ---- Run 1: both workers, every task across a veth.
prefix1=serfn-netns-$$-1
start_worker "$NS1" "$prefix1"
start_worker "$NS2" "$prefix1"
wait_started "$dir/$NS1.$prefix1.log"
wait_started "$dir/$NS2.$prefix1.log"

declare -A rx0 tx0
for ns in "$NS1" "$NS2"; do
    rx0[$ns]=$(counter "$ns-h" rx_bytes)
    tx0[$ns]=$(counter "$ns-h" tx_bytes)
done
say "run 1: redis_driver, SERFN_STARTS=${SERFN_STARTS:-64}, prefix $prefix1"
t=$(ms)
SERFN_PREFIX=$prefix1 "$DRIVER" "$URL" >"$dir/driver1.out" 2>&1 9>&- ||
    die "run 1: the driver failed: $(cat "$dir/driver1.out")"
t1=$(secs "$t")
sed 's/^/    driver: /' "$dir/driver1.out"
for ns in "$NS1" "$NS2"; do
    to_worker=$(($(counter "$ns-h" tx_bytes) - tx0[$ns]))
    from_worker=$(($(counter "$ns-h" rx_bytes) - rx0[$ns]))
    say "run 1: veth $ns-h: $to_worker bytes to $ns, $from_worker bytes from $ns"
    [ "$to_worker" -ge "$MIN_TASK_BYTES" ] ||
        die "run 1: $ns received only $to_worker bytes through its veth: it ran no task"
    [ "$from_worker" -gt 0 ] || die "run 1: $ns sent nothing through its veth"
    grep -q "fetched a function" "$dir/$ns.$prefix1.log" ||
        die "run 1: the worker in $ns never fetched the function: it ran no task; its log: $(cat "$dir/$ns.$prefix1.log")"
done
say "run 1: passed in ${t1}s: both workers ran tasks, across their own veths"
kill_workers

# ---- Run 2: kill -9 the worker in serfn-w1 while it holds a task.
prefix2=serfn-netns-$$-2
start_worker "$NS1" "$prefix2"; w1=$last_pid
start_worker "$NS2" "$prefix2"
wait_started "$dir/$NS1.$prefix2.log"
wait_started "$dir/$NS2.$prefix2.log"
say "run 2: redis_driver, SERFN_STARTS=200, prefix $prefix2, worker in $NS1 (pid $w1) to be killed"
t=$(ms)
SERFN_PREFIX=$prefix2 SERFN_STARTS=200 "$DRIVER" "$URL" >"$dir/driver2.out" 2>&1 9>&- &
driver_pid=$!
# Kill the worker while a task is pending in its name, so that it must be
# taken over: freeze it (SIGSTOP), let what it already wrote reach Redis,
# ask Redis what it holds; SIGKILL it if it holds a task, else thaw it and
# try again. (A task takes it ~10 ms: it rarely holds none.)
consumer1=$(cat /proc/sys/kernel/hostname)-$w1
held=0
for _ in $(seq 1 200); do
    if grep -q "fetched a function" "$dir/$NS1.$prefix2.log"; then
        kill -STOP "$w1"
        sleep 0.05
        held=$(pending "$prefix2" "$consumer1")
        if [ "$held" -gt 0 ]; then
            kill -9 "$w1"
            break
        fi
        kill -CONT "$w1"
    fi
    sleep 0.02
done
[ "$held" -gt 0 ] || die "run 2: never caught the worker in $NS1 ($consumer1) holding a task"
say "run 2: killed the worker in $NS1 with SIGKILL $(secs "$t")s after the driver started, holding $held task(s)"
rc=0
wait "$driver_pid" || rc=$?
driver_pid=
t2=$(secs "$t")
sed 's/^/    driver: /' "$dir/driver2.out"
[ "$rc" -eq 0 ] || die "run 2: the driver failed (exit $rc) after a worker was killed"
taken=$(grep -c "took over a task left idle" "$dir/$NS2.$prefix2.log" || true)
[ "$taken" -gt 0 ] ||
    die "run 2: the worker in $NS2 took over no task from the killed one; its log: $(cat "$dir/$NS2.$prefix2.log")"
left=$(pending "$prefix2")
[ "$left" -eq 0 ] || die "run 2: $left task(s) still pending after the driver finished"
say "run 2: passed in ${t2}s: the worker in $NS2 took over $taken task(s) of the killed one (claim idle ${CLAIM_IDLE_MS} ms); results equal a local run; none left pending"
kill_workers
say "OK"
