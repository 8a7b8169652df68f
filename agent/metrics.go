package agent

import (
	"fmt"
	"io"
	"sort"

	"github.com/VictoriaMetrics/metrics"
)

// WritePrometheus writes the gateway's metrics in Prometheus text format. Everything is read at
// scrape time from the parts that own it, so there is no second copy of any counter to keep in
// step, and a removed camera's series simply stop.
func (a *Agent) WritePrometheus(w io.Writer) {
	link := a.link.Load()
	cams := a.Cameras()
	relaying := 0
	for _, c := range cams {
		if c.Relay.Relaying {
			relaying++
		}
	}
	metrics.WriteGaugeUint64(w, "camgate_cameras", uint64(len(cams)))
	metrics.WriteGaugeUint64(w, "camgate_cameras_relaying", uint64(relaying))
	for _, c := range cams {
		l := fmt.Sprintf(`{camera_id=%q}`, c.ID)
		metrics.WriteGaugeUint64(w, "camgate_camera_relaying"+l, b2u(c.Relay.Relaying))
		metrics.WriteGaugeUint64(w, "camgate_camera_online"+l, b2u(c.Relay.Online))
		metrics.WriteGaugeUint64(w, "camgate_camera_bitrate_bps"+l, uint64(max(c.Relay.BitrateBps, 0)))
		metrics.WriteGaugeFloat64(w, "camgate_camera_fps"+l, c.Relay.FPS)
		metrics.WriteCounterUint64(w, "camgate_camera_reconnects_total"+l, uint64(max(c.Relay.Reconnects, 0)))
		metrics.WriteCounterUint64(w, "camgate_camera_frames_out_total"+l, c.Relay.FramesOut)
		metrics.WriteCounterUint64(w, "camgate_camera_frames_dropped_total"+l, c.Relay.Dropped)
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
	if srv := a.smtpServer.Load(); srv != nil {
		// Connections the LAN policy closed before the banner (SPEC §8: "closed ... and counted").
		metrics.WriteCounterUint64(w, "camgate_smtp_denied_connections_total", srv.Stats().Denied)
	}
	metrics.WriteGaugeFloat64(w, "camgate_uptime_seconds", a.uptime().Seconds())
	metrics.WriteProcessMetrics(w)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
