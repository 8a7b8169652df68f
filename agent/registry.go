package agent

import (
	"encoding/json"
	"fmt"
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

func (a *Agent) storedCameras() (map[string]cameraRecord, error) {
	all, err := a.db.Cameras().All()
	if err != nil {
		return nil, fmt.Errorf("store: reading cameras: %w", err)
	}
	out := make(map[string]cameraRecord, len(all))
	for id, b := range all {
		var r cameraRecord
		if err := json.Unmarshal(b, &r); err != nil {
			a.log.Error("store: skipping a camera record that does not parse", "camera_id", id, "err", err)
			continue
		}
		r.ID = id
		out[id] = r
	}
	return out, nil
}

func (a *Agent) saveCamera(r cameraRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return a.db.Cameras().Put(r.ID, b)
}

// hostOf is the address part of a camera URL, for the registration's "ip".
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
