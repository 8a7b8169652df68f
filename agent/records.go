package agent

import (
	"net/url"
	"time"
)

// cameraRecord is a camera added at run time (pairing page, MQTT), as the store keeps it. Cameras
// from the config file are never stored: the file stays their single source of truth.
type cameraRecord struct {
	CameraConfig
	Device  DeviceInfo `json:"device"`
	AddedAt time.Time  `json:"added_at"`
}

// DeviceInfo is what discovery or ONVIF told us about a camera.
type DeviceInfo struct {
	Vendor      string `json:"vendor,omitempty"`
	Model       string `json:"model,omitempty"`
	Serial      string `json:"serial,omitempty"`
	MAC         string `json:"mac,omitempty"`
	IP          string `json:"ip,omitempty"`
	ONVIF       string `json:"onvif,omitempty"` // device service XAddr
	SnapshotURI string `json:"snapshot_uri,omitempty"`
	PTZ         bool   `json:"ptz,omitempty"`
}

// hostOf is the address part of a camera URL, for the registration's "ip".
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
