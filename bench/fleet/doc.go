// Command fleet measures what a fleet of camgate gateways costs one MQTT broker, and what a
// broker outage does when the whole fleet comes back (issue 17).
//
// It runs N simulated gateways in this one process against a real mosquitto it starts on a
// loopback port. Each gateway is camgate's real uplink: its own bbolt outbox (store.Open) and
// camgate's MQTT client (uplink.MQTT) with a distinct client id and topic prefix, and 4 cameras
// whose registration, state, telemetry and motion events it queues as the agent does. One
// counting subscriber receives everything, as Eltex SC does; mosquitto's $SYS counters, its log
// (one line per accepted CONNECT) and /proc give the broker's side.
//
//	go run ./bench/fleet -n 1000 -for 60s              # steady-state table
//	go run ./bench/fleet -n 1000 -for 60s -storm 30s   # and the storm table
//	go run ./bench/fleet -n 100,1000 -storm 30s,5m
//
// Nothing leaves loopback. The outboxes live on /dev/shm when it exists, so the shared disk is
// not what is measured (fsync on tmpfs costs nothing): the broker is.
package main
