// Command relay measures camgate's relay against ffmpeg -c copy on loopback: for each stream
// count it publishes a 720p25 H.264+AAC clip (~2 Mbit/s, or -bitrate) N times into a stand-in
// camera server, relays every stream to a stand-in Flussonic once with camgate's rtsp.Relay (in a child
// process, so its CPU and RSS are its own) and once with one `ffmpeg -c copy` per stream, and
// prints CPU% per stream, RSS and the share of frames that arrived upstream, for both.
//
//	go run ./bench/relay -n 1,10,40 -dur 20s
//
// Nothing leaves loopback. Needs ffmpeg.
package main
