#!/usr/bin/env bash
# make bench: every figure of the issues, each beside a peer measured in the same run.
# Prints to stdout and keeps a copy in bench/results/latest.txt; bench/README.md quotes it.
# Nothing leaves loopback (multicast only inside a network namespace bench/discovery makes).
# A step that fails is reported and the run goes on; the exit status says whether any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

GO=${GO:-go}
BIN=${BIN:-bin/camgate}
RELAY_COUNTS=${RELAY_COUNTS:-1,10,40}
RELAY_DUR=${RELAY_DUR:-20s}
RELAY_REPS=${RELAY_REPS:-3}
MOTION_SUSTAIN=${MOTION_SUSTAIN:-60s}
DRAIN_N=${DRAIN_N:-20000}
RELAYMODE_EPISODES=${RELAYMODE_EPISODES:-2}

mkdir -p bench/results
out=bench/results/latest.txt
exec > >(tee "$out") 2>&1

failed=()
step() {
	local name=$1
	shift
	echo
	echo "=== $name"
	echo "\$ $*"
	local t0=$SECONDS
	"$@"
	local rc=$?
	echo "--- $name: exit $rc, $((SECONDS - t0)) s"
	[ "$rc" -eq 0 ] || failed+=("$name")
}

echo "=== machine"
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:   $(git rev-parse --short=12 HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
echo "nproc:    $(nproc)"
echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
echo "memory:   $(free -m | awk '/^Mem:/ {print $2 " MiB total, " $7 " MiB available"}')"
echo "go:       $($GO version)"
echo "ffmpeg:   $(ffmpeg -version 2>/dev/null | head -1)"
echo "mosquitto: $(/usr/sbin/mosquitto -h 2>/dev/null | head -1)"
echo "binary:   $BIN $(stat -c %s "$BIN" 2>/dev/null) bytes"

# Issue 3: relay.
step "rtsp forward path allocations" "$GO" test -count=1 -run '^$' -bench 'Forward|PublisherWrite|PlayerRead' -benchmem ./rtsp/
step "rtmp publish path allocations" "$GO" test -count=1 -run '^$' -bench 'WritePacket' -benchmem ./rtmp/
step "cross-compiled sizes" make --no-print-directory cross
step "relay vs ffmpeg -c copy" "$GO" run ./bench/relay -n "$RELAY_COUNTS" -dur "$RELAY_DUR" -reps "$RELAY_REPS" -bin "$BIN"

# Issue 15: relay: motion against always, bytes uploaded per day (about 1 minute per episode).
step "relay: motion vs always, bytes per day" "$GO" run ./bench/relaymode -bin "$BIN" -episodes "$RELAYMODE_EPISODES"

# Issue 4: outbox and MQTT.
step "outbox durable enqueue" "$GO" test -count=3 -run '^$' -bench EnqueueDurable ./store/
step "outbox flash wear" "$GO" test -count=1 -run '^$' -bench FlashWear ./store/
step "drain to mosquitto QoS 1" "$GO" test -count=3 -run '^$' -bench DrainQoS1 -benchtime "${DRAIN_N}x" ./uplink/
step "peer: mosquitto_pub -l -q 1" "$GO" run ./bench/mqttpeer -n "$DRAIN_N" -rounds 3

# Issue 5: discovery.
step "discovery to full inventory" "$GO" run ./bench/discovery -cameras 20 -rounds 5

# Issue 6: motion.
step "smtp in-process DATA to handler" "$GO" test -count=1 -run '^$' -bench DataToHandler -benchtime 1000x ./smtp/
step "alarm mail to event sink through camgate run" "$GO" run ./bench/motion -bin "$BIN" -cameras 1000 -rate 100 -sustain "$MOTION_SUSTAIN" -sustain-cameras 20

echo
echo "=== done in $SECONDS s; loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED steps: ${failed[*]}"
	exit 1
fi
