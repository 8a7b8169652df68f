// Package rtmp publishes a stream to an RTMP server (Flussonic, nginx-rtmp, ffmpeg's listener):
// the handshake, the chunk stream, AMF0 commands and FLV tags, turning the RTP packets of a
// relayed camera into the frames RTMP carries: H.264, AAC and G.711 μ-law at 8 kHz mono (Carries
// says why any other track is refused). The write path allocates nothing per packet
// (BenchmarkWritePacketH264AAC).
//
// It is an own small client rather than a library: gortmplib pulls in go-mp4 and codec
// packages worth about 0.65 MiB on mipsle, a tenth of what the router's flash allows the whole
// daemon, for the small part of RTMP a publisher needs. It only publishes: it never plays,
// never serves, and knows nothing of RTSP sessions, the relay's queue or the agent. What it is
// sent by the server is hostile: messages are bounded in size and chunk streams in number.
package rtmp
