// Package sim simulates the world around a gateway for `camgate demo` and for tests: cameras that
// serve an embedded H.264+AAC clip over RTSP, a Flussonic stand-in that accepts published
// streams, serves them to players and counts their frames, a Watcher event_sink stand-in and an
// MQTT broker standing in for Eltex SC.
//
//   - Camera loops the clip (640x360, 25 fps, GOP 1 s, 16 kHz mono AAC, 10 s) in real time to any
//     number of readers over TCP or UDP, optionally behind Basic/Digest auth. Readers join the
//     live position; RTP timestamps and sequence numbers run on across loops; every IDR carries
//     SPS and PPS in band, as well as in the SDP.
//   - MediaServer takes ANNOUNCE/RECORD on any path (a new publisher replaces the old one), serves
//     each path to DESCRIBE/SETUP/PLAY readers such as ffprobe, and keeps StreamStats per path.
//     It is also the "camera made by ffmpeg" of end-to-end tests: ffmpeg publishes a test pattern
//     into it and camgate pulls it back out. Over RTMP it takes publishes and accounts for their
//     video as a decoder would (sequence header, first keyframe, decode times over every publish
//     of a path), counting what a decoder could not use as lost.
//   - EventSink takes POSTs of JSON arrays of events (SPEC §5) and can answer any status to
//     simulate an outage.
//   - Broker is a small MQTT 3.1.1 broker (QoS 0/1, retained messages, wills, wildcards) standing
//     in for Eltex SC; Out prints each message it receives.
//   - onvifdev (a package of its own) is a simulated ONVIF camera: device, media, PTZ and PullPoint
//     services, WS-Discovery, clock skew and the auth modes of real cameras.
//
// Each part binds its sockets in its constructor (port 0 allowed, so URL() is known at once) and
// serves them in Run until the context ends; nothing is shared between instances, so one process
// can run many.
//
// The clip is two raw elementary streams, clip.h264 and clip.aac, made once by the go:generate
// command in clip.go; tests never regenerate it.
//
// It listens on loopback (or an address a test chose) only and must never be used by the daemon's
// production paths.
package sim
