#!/usr/bin/env bash
# Flash written per alarm mails with JPEGs (issue 12), through a real `camgate run`:
#   bash bench/flash/flash.sh BIN [MAILS] [CAMERAS] [JPEG_KIB]
# swaks sends MAILS alarm mails (default 1000), each with a JPEG of about JPEG_KIB KiB (256), round
# robin from CAMERAS static cameras (4), over loopback, while the MQTT uplink is down (its broker
# address refuses connections), so every snapshot and event queues in the outbox. It prints the
# child's /proc/PID/io write_bytes (bytes the process sent towards the data dir's block device,
# counted when pages are dirtied), its fsync/fdatasync calls (strace -c), the bbolt file's size,
# and how many mails got 250. Nothing leaves loopback. Needs swaks, ffmpeg, strace.
# FLASH_TRACE=FILE also traces every write and sync with its size and file (strace -ff, which
# slows camgate down) into FILE, and prints bench/flash/attribute.py's attribution of it.
set -euo pipefail

bin=$(realpath "${1:?usage: flash.sh BIN [MAILS] [CAMERAS] [JPEG_KIB]}")
mails=${2:-1000}
cameras=${3:-4}
jpeg_kib=${4:-256}

work=$(mktemp -d /var/tmp/camgate-flash.XXXXXX)
trap 'kill "$strace_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
trace=${FLASH_TRACE:-}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A noisy picture compresses badly, so its size follows the resolution: grow it until it is
# JPEG_KIB KiB or more.
jpg=$work/snapshot.jpg
for w in $(seq 640 32 2560); do
	ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=${w}x$((w * 9 / 16)),noise=alls=30:allf=t" \
		-frames:v 1 -q:v 3 "$jpg"
	[ "$(stat -c %s "$jpg")" -ge $((jpeg_kib * 1024)) ] && break
done
echo "jpeg:     $(stat -c %s "$jpg") bytes"

smtp_port=$(free_port)
mqtt_port=$(free_port) # nothing listens there: the uplink is down
cfg=$work/camgate.yaml
{
	echo "gateway_id: flash"
	echo "data_dir: $work/data"
	echo "log: {level: warn}"
	echo 'web: {listen: ""}'
	echo "discovery: {onvif: false, mdns: false}"
	echo "smtp: {listen: \"127.0.0.1:$smtp_port\"}"
	echo "mqtt: {url: \"mqtt://127.0.0.1:$mqtt_port\"}"
	echo "motion: {hold: 2s}"
	echo "cameras:"
	for i in $(seq 1 "$cameras"); do
		echo "  - {id: cam$i, url: 'rtsp://127.0.0.1:9/x', enabled: false}"
	done
} >"$cfg"

if [ -n "$trace" ]; then
	strace --seccomp-bpf -ff -ttt -y -xx -s 160 -e trace=pwrite64,write,fsync,fdatasync -o "$work/trace" \
		"$bin" run -c "$cfg" 2>"$work/camgate.log" &
else
	strace --seccomp-bpf -f -c -e trace=fsync,fdatasync -o "$work/strace.txt" "$bin" run -c "$cfg" 2>"$work/camgate.log" &
fi
strace_pid=$!
pid=
for _ in $(seq 1 300); do
	pid=$(pgrep -P "$strace_pid" || true)
	[ -n "$pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null && break
	sleep 0.1
done
[ -n "$pid" ] || { echo "camgate did not start"; cat "$work/camgate.log"; exit 1; }
io() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/io"; }
w0=$(io write_bytes)
t0=$SECONDS

# send_one I sends mail I from camera cam((I-1) % CAMERAS + 1) and prints ok (250) or refused.
send_one() {
	local cam=cam$((($1 - 1) % cameras + 1))
	if swaks --server "127.0.0.1:$smtp_port" --from "$cam@alarm.local" --to "$cam@camgate.local" \
		--header "Subject: Motion Detection Alarm" --body "Alarm Event: Motion Detection" \
		--attach-type image/jpeg --attach "@$jpg" --attach-name snapshot.jpg --silent 2 >/dev/null 2>&1; then
		echo ok
	else
		echo refused
	fi
}
export -f send_one
export cameras smtp_port jpg
# Four swaks at a time, like cameras that each send on their own.
seq 1 "$mails" | xargs -P 4 -I{} bash -c 'send_one {}' >"$work/answers.txt"
sleep 3 # motion hold (2 s) ends: the stopped events are queued too
w1=$(io write_bytes)
kill -TERM "$pid"
wait "$strace_pid" || true

ok=$(grep -c '^ok$' "$work/answers.txt" || true)
echo "mails:    $mails from $cameras cameras in $((SECONDS - t0)) s: $ok answered 250, $((mails - ok)) refused"
echo "written:  $((w1 - w0)) bytes (/proc/PID/io write_bytes), $(((w1 - w0) * 1000 / mails / 1024)) KiB per 1000 mails"
if [ -n "$trace" ]; then
	sort -n -s -k1,1 "$work"/trace.* >"$trace"
	fsyncs=$(grep -cE '^[0-9.]+ +f(data)?sync\(' "$trace" || true)
else
	fsyncs=$(awk '$NF == "fsync" || $NF == "fdatasync" {n += $4} END {print n + 0}' "$work/strace.txt")
fi
echo "fsyncs:   $fsyncs (fsync + fdatasync, strace; at start and stop included)"
echo "bbolt:    $(stat -c %s "$work/data/camgate.db" 2>/dev/null || echo '?') bytes at the end"
echo "data dir: $(du -sb "$work/data" | cut -f1) bytes at the end"
drops=$(grep -ci 'dropp\|full' "$work/camgate.log" || true)
echo "log lines about drops or a full outbox: $drops"
if [ -n "$trace" ]; then python3 "$(dirname "$0")/attribute.py" "$trace"; fi
