// Package sim simulates the world around a gateway for `camgate demo` and for tests: cameras that
// serve an embedded H.264+AAC clip over RTSP, and a Flussonic stand-in that accepts published
// streams, serves them to players and counts their frames.
//
// It listens on loopback (or an address a test chose) only and must never be used by the daemon's
// production paths.
package sim
