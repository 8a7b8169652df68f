package agent

import (
	"strings"

	"github.com/camgate/camgate/internal/endpoint"
)

// Credentials are pinned to the identity they were first given for (issue 13, DESIGN.md): a
// camera added by URL keeps its host and port as entered; a discovered camera keeps its
// WS-Discovery endpoint reference (or mDNS instance) and the MAC the neighbour table gave for
// it. WS-Discovery and mDNS are unauthenticated multicast: any device on the LAN can replay a
// camera's endpoint reference from its own address. So an announcement from a new address
// re-points a camera only when the announcer's MAC is the pinned one; otherwise the camera is
// shown as "moved?" (moved_to) and keeps relaying from the address it has, until the owner
// confirms the new address with set_camera (URL and password again).
//
// Home Assistant's onvif integration and go2rtc do not follow a camera to a new address at all:
// HA keeps the configured host (a changed IP needs the owner to reconfigure the entry, or a
// DHCP reservation); go2rtc streams from the URL as written. camgate follows only a MAC match
// so that a DHCP renewal still costs the owner no visit.

// mayFollow says whether an announcement of rec's endpoint reference from a new address, by a
// device whose neighbour-table MAC is mac, may re-point it.
func (r *registry) mayFollow(rec *discovered, mac string) bool {
	pinned := r.pinnedMACs(rec)
	for _, p := range pinned {
		if mac != "" && strings.EqualFold(p, mac) {
			return true
		}
	}
	if r.hasCredentials(rec.CameraID) {
		return false // a camera with credentials follows only its own MAC
	}
	// A device nobody gave credentials to yet follows a DHCP renewal, unless the MACs on both
	// sides are known and differ: then the owner is asked, as for a camera with credentials,
	// since adding it by camera_id would hand its new address the password.
	return mac == "" || len(pinned) == 0
}

// pinnedMACs are the MACs rec's device was known by: the neighbour table's when it was first
// heard, and the one the camera itself reported over ONVIF once it was added.
func (r *registry) pinnedMACs(rec *discovered) []string {
	var macs []string
	if rec.MAC != "" {
		macs = append(macs, rec.MAC)
	}
	if e, ok := r.cameras[rec.CameraID]; ok && e.device.MAC != "" {
		macs = append(macs, e.device.MAC)
	}
	return macs
}

// hasCredentials says whether the camera is one the owner configured or added (with or without
// a password: a camera without one still must not have its video replaced by an impostor's).
func (r *registry) hasCredentials(id string) bool {
	e, ok := r.cameras[id]
	return ok && e.origin != originDiscovered
}

// holdMove records an announcement that was not followed, for the owner to see.
func (r *registry) holdMove(rec *discovered, xaddr, mac string) {
	if rec.MovedTo != xaddr {
		r.a.log.Warn("a device claims to be a known camera from a new address: not followed until the owner confirms",
			"camera_id", rec.CameraID, "address", rec.XAddr, "announced_from", xaddr,
			"announcer_mac", mac, "pinned_mac", strings.Join(r.pinnedMACs(rec), ","))
	}
	rec.MovedTo, rec.MovedMAC = xaddr, mac
}

// movedTo maps camera ids to the unconfirmed new address their device announced.
func (r *registry) movedTo() map[string]string {
	var m map[string]string
	for _, d := range r.found {
		if d.MovedTo == "" {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[d.CameraID] = d.MovedTo
	}
	return m
}

// confirmMove is the owner's word, by set_camera with a URL: a pending "moved?" of the
// camera is settled, and when the new URL names the announced host, the discovered record takes
// the announcer's address and MAC as its pinned identity.
func (r *registry) confirmMove(id, newURL string) {
	changed := false
	for _, d := range r.found {
		if d.CameraID != id || d.MovedTo == "" {
			continue
		}
		if sameHost(d.MovedTo, newURL) {
			d.XAddr, d.IP = d.MovedTo, hostOf(d.MovedTo)
			if d.MovedMAC != "" {
				d.MAC = d.MovedMAC
			}
		}
		d.MovedTo, d.MovedMAC = "", ""
		changed = true
	}
	if changed {
		r.saveDiscovered()
	}
}

// sameHost says whether two URLs name the same host (case and IPv4-mapped forms aside). The
// port is not compared: one host is one trust domain.
func sameHost(a, b string) bool {
	ha, hb := endpoint.NormalHost(hostOf(a)), endpoint.NormalHost(hostOf(b))
	return ha != "" && ha == hb
}
