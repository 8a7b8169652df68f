package agent

// streamNameOf is the Flussonic stream a camera publishes to now: its own stream_name, else
// flussonic.stream_name filled in for it. It reads the loop's published view.
func (a *Agent) streamNameOf(cameraID string) string {
	v := a.view.Load()
	if c, ok := v.camera(cameraID); ok {
		return c.status.StreamName
	}
	return v.cfg.CameraStreamName(cameraID, "")
}
