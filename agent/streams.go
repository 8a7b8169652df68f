package agent

// streamNameOf is the Flussonic stream a camera publishes to now: its own stream_name, else
// flussonic.stream_name filled in for it.
func (a *Agent) streamNameOf(cameraID string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg := a.loaded.Config
	own := ""
	if e, ok := a.cameras[cameraID]; ok {
		own = e.conf.StreamName
	}
	return cfg.CameraStreamName(cameraID, own)
}
