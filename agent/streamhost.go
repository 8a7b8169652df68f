package agent

import (
	"strings"

	"github.com/camgate/camgate/internal/endpoint"
)

// A camera's credentials were given for the host of its URL. The stream its ONVIF service or a
// path probe names is the camera's say, not the owner's, so a stream on another host is pulled
// without them (issue 13: credentials go only to the host they were given for; for redirects
// internal/redirect.SameHost is the same rule). onvif.Inventory already points such URIs at the
// device's own host; this holds even where a URI slips past that, such as one it cannot parse.

// streamCredentials returns the username and password the relay may send to source, the stream
// URL it pulls for camera c: c's own unless source is a resolved stream on another host.
func streamCredentials(c CameraConfig, source string) (user, pass string) {
	if source == c.URL || sameHost(source, c.URL) {
		return c.Username, c.Password
	}
	return "", ""
}

// withheldNote explains a relay's refusal when the camera's credentials were withheld from its
// stream's host: without it, a 401 there reads as a wrong password.
func withheldNote(username, cameraURL, stream, lastError string) string {
	if username == "" || stream == "" || lastError == "" || stream == cameraURL || sameHost(stream, cameraURL) {
		return lastError
	}
	if !strings.Contains(lastError, "401") && !strings.Contains(strings.ToLower(lastError), "unauthorized") {
		return lastError
	}
	return lastError + "; the camera named a stream on another host (" + endpoint.NormalHost(hostOf(stream)) +
		") than its own (" + endpoint.NormalHost(hostOf(cameraURL)) +
		"), which gets no credentials: give the stream's rtsp:// URL as the camera's url to trust that host"
}
