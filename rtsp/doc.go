// Package rtsp pulls video from cameras and publishes it upstream over RTSP or RTMP, joining the
// two with reconnect, keyframe gating and statistics (Relay), and probes a camera URL (Probe).
//
// A Relay runs two independent loops. The camera side (source.go) holds a camera session: the
// first H.264/H.265 video track and, unless audio is off, the first AAC, G.711 or
// Opus track; ONVIF metadata and back channels are never set up. The upstream side (sink.go,
// sink_rtmp.go) announces those tracks with RTSP ANNOUNCE/RECORD over TCP interleaved, or publishes
// them over RTMP. Between the two sits a forwarder (forward.go): a fixed ring of packet headers whose
// payloads lie back to back in one byte arena that grows only as far as the queue fills. It drops everything until a keyframe after any restart of either side or an
// overflow, injects the parameter sets (from the SDP or learned in-band) in front of that
// keyframe, and rewrites sequence numbers and timestamps in place so that one upstream session
// survives camera restarts. A slow uplink therefore costs video until the next keyframe, never
// memory. Beside the queue, a GOP cache (gopcache.go) keeps what the camera sent since its last
// keyframe, parameter sets first, in 64 KiB chunks drawn from a CacheBudget that all relays of
// a process share; over budget the camera with the largest GOP loses its cache and waits for
// keyframes as without one. A new upstream session is sent the cached GOP at once, with the
// camera's timestamps and each packet's arrival time (so that sender reports and RTMP times
// map it to the wall clock it arrived at), and the live stream follows without a gap: the
// server gets a decodable picture within a round trip instead of within a GOP. Codecs pass through untouched: the RTSP path forwards RTP payloads as they came; the
// RTMP path depacketizes into frames because RTMP carries frames.
//
// Over TCP, the default, the camera session is an own small client (player.go): OPTIONS,
// DESCRIBE (following redirects on the camera's own host only), SETUP per relayed track, PLAY,
// then interleaved frames parsed where they lie in the read buffer, with RTCP receiver reports
// and keep-alives written from the same goroutine between reads. After each read the camera
// goroutine writes what it queued straight to the upstream socket if that takes it without
// waiting (Relay.batchDone), so a batch usually costs one wake-up, one read and one write. A
// Pacer shared by all relays of a process (pacer.go) makes the camera sides, once there are
// enough of them, wake together once a period and read without waiting, instead of each waking
// for every burst its camera sends. A relay whose camera streams fast enough instead asks the
// kernel to wake it only once about a period's worth of the stream is waiting (SO_RCVLOWAT,
// lowwater.go) and leaves the Pacer, which then paces only slow cameras. Over UDP the camera session is gortsplib's client, whose
// port handling the player does not repeat.
//
// The RTSP upstream session (publisher.go) is an own small client rather than gortsplib's:
// ANNOUNCE, SETUP per track and RECORD (answering one Basic or Digest challenge), then the
// goroutine that drains the forwarder frames every packet queued when it wakes into one buffer
// and writes them together when the camera goroutine could not (see above). conn.go holds
// what the two clients share: requests, answers, authentication and buffered writes. It sends RTCP sender reports and OPTIONS
// keep-alives within the server's session timeout, and discards what the server sends.
//
// Each side reconnects forever with the backoff in backoff.go: jittered attempts under a second
// apart during the first minute of an outage, then doubling to 30 s. The camera's track set is
// compared by codec parameters; only a change makes the upstream side announce again, and an
// upstream failure never touches the camera session.
//
// RTMP publishing is package rtmp (sink_rtmp.go hands it the queued packets). FindStream
// (pathprobe.go) finds the stream of a camera given only by address among the common vendors'
// paths, paced, sending credentials only to a path that asked for them.
//
// The package knows nothing of ONVIF, MQTT or the agent.
package rtsp
