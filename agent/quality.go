package agent

import "github.com/camgate/camgate/rtsp"

// substreamOf is the stream a camera's relay steps down to when the uplink cannot carry every
// main stream (issue 15, adaptive quality): its configured substream_url, else the second
// video profile its ONVIF device reported. A camera already relaying its substream
// (substream: true) has nothing lower to step down to, and "" keeps the relay on its stream.
// The loop calls it while building a relay's config; it only reads the entry.
func substreamOf(e *cameraEntry, source string) string {
	c := e.conf
	switch {
	case c.SubstreamURL != "":
		return c.SubstreamURL
	case c.Substream || e.resolver == nil || e.resolved.dev == nil:
		return ""
	case e.resolved.dev.SubStream == source:
		return ""
	}
	return e.resolved.dev.SubStream
}

// withQuality adds the uplink-quality settings to a camera's relay config: every relay shares
// the agent's governor, since they share the gateway's uplink, and the camera's priority says
// which keeps its main stream longest.
func (a *Agent) withQuality(rc rtsp.RelayConfig, e *cameraEntry) rtsp.RelayConfig {
	rc.Substream = substreamOf(e, rc.Source)
	rc.Priority = e.conf.Priority
	rc.Quality = a.quality
	return rc
}
