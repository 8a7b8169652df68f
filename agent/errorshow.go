package agent

// shownError is how a camera's errors reach its last_error. For a camera named from the page or
// MQTT the network's own words (refused, reset, timed out) become "no camera answered at that
// address" (hideProbeError, as the page's stream test does), so that adding cameras and reading
// their state cannot map which ports of a LAN host are open (issue 13, "No SSRF"). A camera in
// the config file was named by whoever owns the gateway: its errors show as they are. nil
// means unchanged.
func shownError(origin string) func(error) error {
	if origin == originConfig {
		return nil
	}
	return hideProbeError
}

// errorText renders err as show lets it be seen.
func errorText(show func(error) error, err error) string {
	if show != nil {
		err = show(err)
	}
	return err.Error()
}
