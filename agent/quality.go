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
	rc.OnQuality = a.onQualityOf(e.id)
	return rc
}

// The registration (P/cameras/<id>/config) carries the camera's quality and the uplink rate
// beside SPEC §6's fields, as the state does (issue 15). A registration is news only when a
// field but its ts and uplink_bps changed: uplink_bps is the rate measured when the
// registration was made, so the governor's switches, a few an hour at most by its hysteresis,
// re-register a camera, and the rate's every change does not.

// onQualityOf is the relay's OnQuality for camera id: it hands the switch to the loop without
// making the relay wait for it.
func (a *Agent) onQualityOf(id string) func(string) {
	return func(string) { go a.tell(qualitySwitched{id: id}) }
}

// qualitySwitched says a camera's relay switched between its main stream and substream.
type qualitySwitched struct{ id string }

func (q qualitySwitched) serve(r *registry) result {
	if e, ok := r.cameras[q.id]; ok && e.relay != nil {
		r.register(e)
	}
	return result{}
}

// qualityOf is what a camera's registration says it relays: "sub" while its relay plays the
// substream, else "main", also when it is not relayed, as that is what it would relay.
func qualityOf(e *cameraEntry) string {
	if e.relay != nil && e.relay.relay.Stats().Quality == "sub" {
		return "sub"
	}
	return "main"
}

// uplinkOf is what the camera's upstream session carries now, 0 when it is not relayed.
func uplinkOf(e *cameraEntry) int64 {
	if e.relay == nil {
		return 0
	}
	return e.relay.relay.Stats().UplinkBps
}
