// Package rtsp pulls video from cameras and publishes it upstream (Relay), and reads a camera
// URL to see what it sends (Probe, ProbeWith: `camgate probe` and the pairing page's "Test
// stream") or finds its stream among the common vendors' paths (FindStream).
//
// # One RTSP client
//
// Every RTSP exchange with a camera or a server goes through one small client, rtspConn
// (conn.go): requests with CSeq and Session, one Basic or Digest challenge answered, answers
// read past interleaved frames, buffered writes. The camera session (player.go), the upstream
// session (publisher.go) and FindStream's DESCRIBEs (pathprobe.go) all use it, so there is one
// redirect policy (follow only to the camera's own host), one auth policy (Digest, Basic only
// over TLS or for a camera marked auth: basic, no credentials to a path that did not ask) and
// one place for camera quirks. Probe runs the same camera session as a Relay.
//
// # The camera side
//
// playCamera (source.go) is the one way a camera is played, for relays and probes alike. Over
// TCP (player.go): OPTIONS, DESCRIBE, SETUP per relayed track (the first H.264/H.265 video and,
// unless audio is off, the first AAC, G.711 or Opus track; never metadata or back channels),
// PLAY, then interleaved frames parsed where they lie in the read buffer, with RTCP receiver
// reports and keep-alives written from the same goroutine between reads. Over UDP
// (udpplayer.go) the same connection asks SETUP with client_port and PLAY, then carries only
// keep-alives; each track's RTP and RTCP sockets, bound to the connection's local address, are
// read by a goroutine each and take only what comes from the camera's address and the
// server_port it named, put back in sequence order (reorder.go); receiver reports go to its
// RTCP port. With transport auto (the default) a camera that
// answers 461 Unsupported Transport is tried at once over the other transport, and a UDP
// session that delivers nothing for 3 s moves to TCP; the relay remembers what worked
// (Stats.Transport).
//
// How the camera goroutine waits between reads is one type, readWait (wait.go): plainly on the
// socket; with the socket's low-water mark (lowwater.go) set to about a Pacer period's worth of
// the stream; or, for cameras too slow for a mark, for the tick of a Pacer shared by every relay
// of a process (pacer.go). Reads and writes are system calls that never block (rawio_linux.go),
// so a batch usually costs one wake-up, one read and one write.
//
// # Between the sides, and upstream
//
// A forwarder (forward.go) is a fixed ring of packet headers whose payloads lie back to back in
// one arena. It drops everything until a keyframe after a restart of either side or an
// overflow, injects the parameter sets in front of that keyframe, and rewrites sequence numbers
// and timestamps so that one upstream session survives camera restarts: a slow uplink costs
// video until the next keyframe, never memory. A GOP cache (gopcache.go) keeps what the camera
// sent since its last keyframe, in chunks mapped outside the Go heap (on unix) and drawn from a
// CacheBudget that all relays share (over budget the largest GOP loses its cache), so that a
// new upstream session gets a decodable picture within a round trip.
//
// The upstream side (sink.go) publishes through the upstream interface (upstream.go): RTSP
// ANNOUNCE/RECORD over TCP interleaved (publisher.go), or RTMP (package rtmp), by the publish
// URL's scheme. upstreamWriter (writer.go) is the only way to the upstream socket and owns its
// lock: the upstream goroutine drains with blocking writes, and the camera goroutine after each
// batch writes what the socket takes without waiting for the lock or the socket. A new
// session's burst from the GOP cache goes only from the upstream goroutine (attach), so the
// camera goroutine never spends longer than its own batch on the upstream. A gate
// (gate.go) holds a gated relay's upstream shut while the camera side keeps running. Each side
// reconnects forever with the backoff in backoff.go; an upstream failure never touches the
// camera session, and only a change of the camera's tracks makes upstream announce again.
//
// A QualityGovernor (quality.go), shared by the relays of a process as they share its uplink,
// reads each relay's drops and send-queue backlog once a second and decides with a plain-data
// policy (quality_policy.go) which camera steps down to its substream and which is probed back.
// The switch (quality_switch.go) is make-before-break: the other stream's session opens beside
// the current one and the forwarder adopts it at its first keyframe, so the upstream session
// goes on with continuous timestamps.
//
// The package must not know ONVIF, MQTT, the store or the agent; it imports rtmp, never the
// other way round. What a camera or server sends is hostile: answers are parsed by gortsplib's
// bounded parser (255 headers, 128 KiB bodies), interleaved frames are at most 64 KiB by their
// format, and a malformed message ends that session, not the process.
package rtsp
