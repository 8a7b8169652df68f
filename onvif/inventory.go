package onvif

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Device is everything camgate needs to know about an ONVIF camera, as plain values.
type Device struct {
	XAddr        string
	Manufacturer string
	Model        string
	Firmware     string
	Serial       string
	HardwareID   string
	MAC          string
	Profiles     []Profile
	MainStream   string // RTSP URI of the first video profile
	SubStream    string // RTSP URI of the second video profile, "" if there is none
	SnapshotURI  string
	HasPTZ       bool
	HasEvents    bool
	EventsXAddr  string
	PTZXAddr     string
	ClockOffset  time.Duration // device clock minus ours
}

// Inventory asks a device for everything in Device: clock, information, services, profiles and
// their stream and snapshot URIs (hosts fixed to the device's address). Only a failure of
// GetDeviceInformation or of listing profiles is an error; optional calls that the device does not
// support leave their fields empty.
func Inventory(ctx context.Context, c *Client) (Device, error) {
	d := Device{XAddr: c.XAddr()}
	if off, err := c.SyncClock(ctx); err == nil {
		d.ClockOffset = off
	} else if ctx.Err() != nil {
		return d, err
	} else {
		c.log.Debug("onvif: no device clock; WS-Security uses ours", "xaddr", c.XAddr(), "err", err)
	}

	info, err := c.GetDeviceInformation(ctx)
	if err != nil {
		return d, err
	}
	d.Manufacturer, d.Model, d.Firmware, d.Serial, d.HardwareID = info.Manufacturer, info.Model, info.Firmware,
		info.Serial, info.HardwareID

	svc, err := c.GetServices(ctx)
	if err != nil || (svc.Media == "" && svc.Media2 == "") {
		if errors.Is(err, ErrUnauthorized) {
			return d, err
		}
		if capSvc, cerr := c.GetCapabilities(ctx); cerr == nil {
			if svc.Media2 != "" && capSvc.Media2 == "" {
				capSvc.Media2 = svc.Media2
			}
			svc = capSvc
			c.setServices(svc)
		} else if errors.Is(cerr, ErrUnauthorized) {
			return d, cerr
		}
	}
	d.EventsXAddr, d.PTZXAddr = svc.Events, svc.PTZ
	d.HasEvents, d.HasPTZ = svc.Events != "", svc.PTZ != ""

	if ifs, err := c.GetNetworkInterfaces(ctx); err == nil {
		for _, ni := range ifs {
			if ni.MAC != "" {
				d.MAC = ni.MAC
				break
			}
		}
	}

	// Media2 knows H.265 profiles that Media hides, but is the younger and buggier service:
	// use it when offered, and fall back to Media on any trouble.
	media2 := false
	var profiles []Profile
	if svc.Media2 != "" {
		if p, err := c.GetProfiles2(ctx); err == nil && len(p) > 0 {
			profiles, media2 = p, true
		} else if errors.Is(err, ErrUnauthorized) {
			return d, err
		}
	}
	if !media2 {
		p, err := c.GetProfiles(ctx)
		if err != nil {
			return d, err
		}
		profiles = p
	}

	var video []int
	for i := range profiles {
		p := &profiles[i]
		if p.HasPTZ {
			d.HasPTZ = true
		}
		if p.Codec == "JPEG" {
			// MJPEG profiles cannot be relayed; they still get a snapshot URI below.
		} else if p.Codec != "" {
			video = append(video, i)
		}
		var uri string
		if media2 {
			uri, err = c.GetStreamURI2(ctx, p.Token)
		} else {
			uri, err = c.GetStreamURI(ctx, p.Token)
		}
		if err == nil {
			p.StreamURI = c.fixMediaURL(uri)
		} else if errors.Is(err, ErrUnauthorized) {
			return d, err
		}
		if media2 {
			uri, err = c.GetSnapshotURI2(ctx, p.Token)
		} else {
			uri, err = c.GetSnapshotURI(ctx, p.Token)
		}
		if err == nil {
			p.SnapshotURI = c.fixMediaURL(uri)
		}
	}
	d.Profiles = profiles
	if len(video) > 0 {
		d.MainStream = profiles[video[0]].StreamURI
		if len(video) > 1 {
			d.SubStream = profiles[video[1]].StreamURI
		}
		d.SnapshotURI = profiles[video[0]].SnapshotURI
	}
	if d.MainStream == "" {
		for _, p := range profiles {
			if p.StreamURI != "" {
				d.MainStream = p.StreamURI
				break
			}
		}
	}
	if d.SnapshotURI == "" {
		for _, p := range profiles {
			if p.SnapshotURI != "" {
				d.SnapshotURI = p.SnapshotURI
				break
			}
		}
	}
	if d.MainStream == "" {
		return d, fmt.Errorf("onvif %s: no profile has an RTSP stream (profiles: %s)", c.XAddr(), profileNames(profiles))
	}
	return d, nil
}

func profileNames(ps []Profile) string {
	if len(ps) == 0 {
		return "none"
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Token)
	}
	return strings.Join(names, ", ")
}
