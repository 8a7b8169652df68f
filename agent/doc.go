// Package agent is the one place that knows every part of camgate: the camera registry and its
// lifecycle (desired versus actual state), config load, validation and reload, motion debounce,
// telemetry and the wiring between the protocol packages, the store and the uplink.
//
// It decides; it does not speak protocols itself. Protocol packages (rtsp, onvif, smtp) must never
// import it.
package agent
