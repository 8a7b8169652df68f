// Package uplink carries everything that leaves the gateway besides video: the MQTT client for
// Eltex SC, the Flussonic/Watcher event-sink HTTP client, the loops that drain store's outbox
// into them, and the zero-touch stream setup at the Flussonic Media Server API.
//
// A message leaves the outbox only once the far side acknowledged it. This package does not
// decide what to say; the agent does: it renders payloads (Event.MarshalEventSink or
// MarshalEpisode for sinks, JSON for MQTT, Preview for an episode's JPEG) and enqueues them, and
// uplink delivers them in order, at least once. Everything it reads from the network is bounded:
// MQTT packets by a cap on the connection (packetcap.go), HTTP answers by size.
//
// # MQTT
//
// MQTT.Run keeps one connection at a time. paho runs with a clean session, no automatic reconnect
// and an in-memory store, because paho's tokens can complete across a reconnect without delivery
// and its store is not an offline queue: the outbox is the only queue. Run peeks a window of the
// oldest messages (up to 1,024 or 4 MiB), publishes them all (QoS 1, telemetry QoS 0), waits for
// their acknowledgements in order and acknowledges in the outbox the prefix that was acknowledged
// while the connection was still up. Anything else is sent again after the next connect, so
// receivers see every message in order, possibly more than once.
//
// Message.Topic is relative to MQTTConfig.TopicPrefix ("cameras/porch/config" is published as
// "<prefix>/cameras/porch/config"), so a changed prefix applies to what is already queued. A
// message whose topic can never be published (empty, wildcard, NUL) is logged and dropped rather
// than blocking the queue for ever. An empty retained payload clears a retained topic.
//
// On connect the client publishes "<prefix>/status" {"state":"online"} retained, with the same
// topic's "offline" as its Last Will; on a clean stop it publishes "offline" itself, since a clean
// DISCONNECT does not fire the Will. Commands arrive on "<prefix>/cmd/+" and are answered on
// "<prefix>/cmd/<name>/reply"; payloads over 64 KiB, non-JSON, or without an "id" are answered
// with ok=false without reaching the handler; at most 8 handlers run at once, each bounded by a
// timeout, and a command beyond that bound is refused as busy rather than queued.
//
// # Event sinks
//
// EventSink.Run, in the event_sink format, posts up to 100 queued events as one JSON array,
// concatenating the payloads as they are; in the episodes format it PUTs each queued episode to
// <url>/<episode_id>. A 2xx answer acknowledges; anything else keeps it and the same request is
// retried with capped, jittered backoff, so order holds. The sink's headers go on every request.
//
// # Media Server API
//
// StreamSetup.Run creates or updates each wanted stream with PUT <api>/streams/<name> and a
// publish:// input, retried with backoff until it succeeds. Want hands it the latest set and
// never waits, so neither the agent's loop nor a relay waits for the API; a stream no longer
// wanted is left alone (its archive lives there).
//
// EventIDs hands out event_id values that increase across restarts; it must not be used for
// anything else, and nothing here decides what an event says.
package uplink
