// Package rtsp pulls video from cameras (Source), publishes it upstream over RTSP or RTMP (Sink)
// and joins the two with reconnect, keyframe gating and statistics (Relay).
//
// It passes codecs through untouched and must not allocate per packet on the forward path, nor
// buffer without bound: a slow uplink drops video until the next keyframe. It knows nothing of
// ONVIF, MQTT or the agent.
package rtsp
