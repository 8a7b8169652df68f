package onvif

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Preset is a stored PTZ position.
type Preset struct {
	Token string
	Name  string
}

func (c *Client) ptzAddr() string { return c.service(func(s Services) string { return s.PTZ }) }

// ContinuousMove starts moving at the given velocities (-1..1); timeout > 0 asks the device to
// stop by itself after that long, so a lost Stop does not leave the camera spinning.
func (c *Client) ContinuousMove(
	ctx context.Context, profileToken string, pan, tilt, zoom float64, timeout time.Duration,
) error {
	f := func(v float64) string { return strconv.FormatFloat(clamp(v), 'f', -1, 64) }
	body := `<tptz:ContinuousMove><tptz:ProfileToken>` + xmlEscape(profileToken) + `</tptz:ProfileToken><tptz:Velocity>` +
		`<tt:PanTilt x="` + f(pan) + `" y="` + f(tilt) + `"/><tt:Zoom x="` + f(zoom) + `"/></tptz:Velocity>`
	if timeout > 0 {
		body += `<tptz:Timeout>` + xsDuration(timeout) + `</tptz:Timeout>`
	}
	body += `</tptz:ContinuousMove>`
	_, err := c.call(ctx, c.ptzAddr(), nsPTZ, "ContinuousMove", body)
	return err
}

func clamp(v float64) float64 {
	switch {
	case v > 1:
		return 1
	case v < -1:
		return -1
	case v != v: // NaN
		return 0
	}
	return v
}

// Stop stops pan, tilt and zoom.
func (c *Client) Stop(ctx context.Context, profileToken string) error {
	body := `<tptz:Stop><tptz:ProfileToken>` + xmlEscape(profileToken) +
		`</tptz:ProfileToken><tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom></tptz:Stop>`
	_, err := c.call(ctx, c.ptzAddr(), nsPTZ, "Stop", body)
	return err
}

// GotoPreset moves to a stored preset.
func (c *Client) GotoPreset(ctx context.Context, profileToken, presetToken string) error {
	body := `<tptz:GotoPreset><tptz:ProfileToken>` + xmlEscape(profileToken) + `</tptz:ProfileToken><tptz:PresetToken>` +
		xmlEscape(presetToken) + `</tptz:PresetToken></tptz:GotoPreset>`
	_, err := c.call(ctx, c.ptzAddr(), nsPTZ, "GotoPreset", body)
	return err
}

// GetPresets lists the stored presets of a profile.
func (c *Client) GetPresets(ctx context.Context, profileToken string) ([]Preset, error) {
	res, err := c.call(ctx, c.ptzAddr(), nsPTZ, "GetPresets",
		`<tptz:GetPresets><tptz:ProfileToken>`+xmlEscape(profileToken)+`</tptz:ProfileToken></tptz:GetPresets>`)
	if err != nil {
		return nil, err
	}
	return parsePresets(res), nil
}

func parsePresets(res *element) []Preset {
	var out []Preset
	for _, p := range res.all("Preset") {
		out = append(out, Preset{Token: p.attr("token"), Name: p.child("Name").text()})
	}
	return out
}

// xsDuration formats d as an xs:duration in seconds, e.g. PT600S (cameras parse the simple form
// most reliably).
func xsDuration(d time.Duration) string {
	s := d.Seconds()
	if s == float64(int64(s)) {
		return fmt.Sprintf("PT%dS", int64(s))
	}
	return "PT" + strconv.FormatFloat(s, 'f', 3, 64) + "S"
}
