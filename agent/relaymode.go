package agent

import (
	"context"
	"fmt"
	"time"
)

// Relay modes (SPEC §2 `relay`, issue 15): always publishes whenever the camera streams;
// on_demand publishes only within a window opened by the MQTT command start_relay (SPEC §6)
// and closed by its end or by stop_relay. The camera side of a gated relay stays connected, so
// that a window starts from the relay's GOP cache within a round trip.
const (
	relayAlways   = "always"
	relayOnDemand = "on_demand"
)

// maxStartRelay bounds one start_relay window; SC asks again while someone keeps watching.
const maxStartRelay = 24 * time.Hour

// gated says whether a camera's relay publishes only within windows.
func gated(c CameraConfig) bool { return c.Relay == relayOnDemand }

// StartRelay opens a publishing window of the given length for an on_demand camera and
// returns when it ends. A camera that relays always is already publishing: nothing changes.
func (a *Agent) StartRelay(ctx context.Context, id string, d time.Duration) (map[string]any, error) {
	if d <= 0 || d > maxStartRelay {
		return nil, fmt.Errorf("start_relay: seconds must be from 1 to %d, not %d",
			int(maxStartRelay/time.Second), int(d/time.Second))
	}
	res, err := a.ask(ctx, publishWindowRequest{id: id, until: time.Now().Add(d)})
	if err != nil {
		return nil, err
	}
	return res.window, nil
}

// StopRelay ends an on_demand camera's publishing window now.
func (a *Agent) StopRelay(ctx context.Context, id string) (map[string]any, error) {
	res, err := a.ask(ctx, publishWindowRequest{id: id})
	if err != nil {
		return nil, err
	}
	return res.window, nil
}

// publishWindowRequest opens a camera's window until a time, or shuts it (zero until).
type publishWindowRequest struct {
	id    string
	until time.Time
}

func (q publishWindowRequest) serve(r *registry) result {
	e, ok := r.cameras[q.id]
	if !ok {
		return result{err: fmt.Errorf("%w: %s", ErrUnknownCamera, q.id)}
	}
	mode := e.conf.Relay
	if mode == "" {
		mode = relayAlways
	}
	reply := map[string]any{"camera_id": q.id, "relay": mode}
	if !gated(e.conf) {
		return result{window: reply}
	}
	e.publishUntil = q.until
	r.applyWindow(e)
	if e.relay == nil {
		// Kept for when the relay starts; say why it is not publishing yet.
		reply["problem"] = e.problem
	}
	if !q.until.IsZero() {
		reply["until"] = q.until.UTC().Format(time.RFC3339)
	}
	return result{window: reply}
}

// applyWindow hands a gated camera's window to its running relay; startRelay calls it too, so
// a relay restarted inside a window goes on publishing.
func (r *registry) applyWindow(e *cameraEntry) {
	if e.relay != nil && e.relay.cfg.Gated {
		e.relay.relay.PublishUntil(e.publishUntil)
	}
}
