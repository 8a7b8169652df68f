// Package agent is the one place that knows every part of camgate: it loads and validates the
// config, keeps the camera registry, and wires the protocol packages (rtsp, rtmp, onvif, mdns,
// smtp), motion, the store and the uplink together. It decides; it speaks no protocol itself,
// and no protocol package may import it.
//
// # Who owns what
//
// One goroutine, the registry loop (registry.go), owns the camera registry, the loaded config
// and the pairing page's connection settings, and starts and stops every relay, every ONVIF
// stream resolver and the uplink (the MQTT client and event sinks). Nothing else touches those
// fields, and there is no mutex around them.
//
// A change travels as a typed request on Agent.requests: reload (SIGHUP), add, set (rename,
// enable, disable), remove, reboot_relay, connection settings, publish window, discovery found
// or lost, stream resolved, and the loop's own "a relay, resolver or uplink has stopped". ask
// sends one and waits for its answer; tell sends one nobody waits for. The loop serves each in
// turn, reconciles the running relays with what is wanted, publishes a fresh view and answers.
//
// Readers (the page, /metrics, telemetry, MQTT state, the mail intake) read that view through
// an atomic.Pointer: an immutable copy of the registry and config, used with no lock held.
// Relay statistics are read live from each relay.
//
// The loop does no network I/O and waits for nothing: a relay, resolver or uplink is asked to
// stop (its context is cancelled) and a goroutine of its own reports its end as a request, so a
// reboot_relay never blocks the page, SMTP or MQTT. A new uplink starts only once the old one
// has ended, so two MQTT clients with one client id never run at once.
//
// Nor does the loop write the store: a bbolt transaction's fsync is tens of milliseconds on
// flash and seconds on a failing disk. One goroutine, the recordWriter (recordwriter.go), owns
// the writes of the agent's records (added cameras, agent ids, discovered devices, connection
// settings, the registered-camera list) and of the registrations the loop queues for MQTT. The
// loop encodes a request's writes, hands them over with the request's reply and goes on; the
// writer does them in order and replies once they are durable. A failed write of a camera or
// of the connection settings is in the reply, and the loop takes that record back as the disk
// holds it, so a restart finds what the replies said. Run drains the writer before it closes
// the store.
//
// Motion is a goroutine of its own (motion.go) around a motion.Tracker, which has an injected
// clock: mail and ONVIF alarms are requests to it, and it answers only once the alarm's event
// is in the outbox, so a mail whose alarm could not be stored is refused with a 4xx. It never
// waits for the registry loop or a relay.
package agent
