package agent

import (
	"fmt"
	"io"
	"sort"

	"github.com/VictoriaMetrics/metrics"
)

// WritePrometheus writes the gateway's metrics in Prometheus text format, as the page's
// GET /metrics serves them without a login (scrapers cannot log in): counts over all cameras
// only, never a camera id, which would tell any LAN host what the gateway watches (issue 13).
// Everything is read at scrape time from the parts that own it, so there is no second copy of
// any counter to keep in step. The sums over cameras drop when a camera is removed, which
// Prometheus reads as a counter reset.
func (a *Agent) WritePrometheus(w io.Writer) { a.writePrometheus(w, false) }

// writePrometheus adds each camera's series, labelled camera_id, when perCamera is set: for
// the local control socket only.
func (a *Agent) writePrometheus(w io.Writer, perCamera bool) {
	link := a.link.Load()
	cams := a.Cameras()
	var relaying, online, bitrate, uplink, substream, reconnects, framesOut, dropped uint64
	for _, c := range cams {
		relaying += b2u(c.Relay.Relaying)
		online += b2u(c.Relay.Online)
		bitrate += uint64(max(c.Relay.BitrateBps, 0))
		uplink += uint64(max(c.Relay.UplinkBps, 0))
		substream += b2u(c.Relay.Quality == "sub")
		reconnects += uint64(max(c.Relay.Reconnects, 0))
		framesOut += c.Relay.FramesOut
		dropped += c.Relay.Dropped
	}
	metrics.WriteGaugeUint64(w, "camgate_cameras", uint64(len(cams)))
	metrics.WriteGaugeUint64(w, "camgate_cameras_relaying", relaying)
	metrics.WriteGaugeUint64(w, "camgate_cameras_online", online)
	metrics.WriteGaugeUint64(w, "camgate_relay_bitrate_bps", bitrate)
	metrics.WriteGaugeUint64(w, "camgate_relay_uplink_bps", uplink)
	metrics.WriteGaugeUint64(w, "camgate_cameras_substream", substream)
	metrics.WriteCounterUint64(w, "camgate_relay_reconnects_total", reconnects)
	metrics.WriteCounterUint64(w, "camgate_relay_frames_out_total", framesOut)
	metrics.WriteCounterUint64(w, "camgate_relay_frames_dropped_total", dropped)
	if perCamera {
		writeCameraSeries(w, cams)
	}
	if srv := a.smtpServer.Load(); srv != nil {
		st := srv.Stats()
		metrics.WriteGaugeUint64(w, "camgate_smtp_sessions", uint64(max(st.Sessions, 0)))
		metrics.WriteGaugeUint64(w, "camgate_smtp_memory_bytes", uint64(max(st.MemoryInUse, 0)))
		metrics.WriteCounterUint64(w, "camgate_smtp_mails_total", st.Mails)
		metrics.WriteCounterUint64(w, "camgate_smtp_auth_failures_total", st.AuthFailures)
		metrics.WriteCounterUint64(w, "camgate_smtp_auth_throttled_total", st.AuthThrottled)
		metrics.WriteCounterUint64(w, "camgate_smtp_over_budget_total", st.OverBudget)
		metrics.WriteCounterUint64(w, "camgate_smtp_evicted_total", st.Evicted)
		// Connections the LAN policy closed before the banner (SPEC §8: "closed ... and counted").
		metrics.WriteCounterUint64(w, "camgate_smtp_denied_connections_total", st.Denied)
	}
	if a.db != nil {
		st := a.db.Outbox().Stats()
		metrics.WriteGaugeUint64(w, "camgate_outbox_depth", uint64(st.Depth))
		metrics.WriteGaugeUint64(w, "camgate_outbox_bytes", uint64(st.Bytes))
		metrics.WriteGaugeUint64(w, "camgate_outbox_max_bytes", uint64(st.MaxBytes))
		metrics.WriteCounterUint64(w, `camgate_outbox_dropped_total{class="telemetry"}`, st.DroppedTelemetry)
		metrics.WriteCounterUint64(w, `camgate_outbox_dropped_total{class="event"}`, st.DroppedEvents)
		queues := make([]string, 0, len(st.Queues))
		for q := range st.Queues {
			queues = append(queues, q)
		}
		sort.Strings(queues)
		for _, q := range queues {
			metrics.WriteGaugeUint64(w, fmt.Sprintf(`camgate_outbox_queue_depth{queue=%q}`, q), uint64(st.Queues[q].Depth))
		}
	}
	if link != nil && link.mqtt != nil {
		metrics.WriteGaugeUint64(w, "camgate_mqtt_connected", b2u(link.mqtt.Connected()))
	}
	metrics.WriteGaugeFloat64(w, "camgate_uptime_seconds", a.uptime().Seconds())
	metrics.WriteProcessMetrics(w)
}

// writeCameraSeries writes each camera's relay series, labelled camera_id.
func writeCameraSeries(w io.Writer, cams []CameraStatus) {
	for _, c := range cams {
		l := fmt.Sprintf(`{camera_id=%q}`, c.ID)
		metrics.WriteGaugeUint64(w, "camgate_camera_relaying"+l, b2u(c.Relay.Relaying))
		metrics.WriteGaugeUint64(w, "camgate_camera_online"+l, b2u(c.Relay.Online))
		metrics.WriteGaugeUint64(w, "camgate_camera_bitrate_bps"+l, uint64(max(c.Relay.BitrateBps, 0)))
		metrics.WriteGaugeFloat64(w, "camgate_camera_fps"+l, c.Relay.FPS)
		metrics.WriteGaugeUint64(w, "camgate_camera_uplink_bps"+l, uint64(max(c.Relay.UplinkBps, 0)))
		metrics.WriteGaugeUint64(w, "camgate_camera_substream"+l, b2u(c.Relay.Quality == "sub"))
		metrics.WriteCounterUint64(w, "camgate_camera_reconnects_total"+l, uint64(max(c.Relay.Reconnects, 0)))
		metrics.WriteCounterUint64(w, "camgate_camera_frames_out_total"+l, c.Relay.FramesOut)
		metrics.WriteCounterUint64(w, "camgate_camera_frames_dropped_total"+l, c.Relay.Dropped)
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
