// Package uplink carries everything that leaves the gateway besides video: the MQTT client for
// Eltex SC, the Flussonic/Watcher event-sink HTTP client, and the loops that drain store's outbox
// into them.
//
// A message leaves the outbox only once the far side acknowledged it. This package does not decide
// what to say; the agent does.
package uplink
