package agent

import (
	"errors"
	"net"
	"net/netip"

	"github.com/camgate/camgate/internal/lan"
)

// Camera URLs from the pairing page or MQTT (add_camera, set_camera, test-stream) may name only
// a camera on the home LAN, never the gateway or camgate's own listeners: otherwise a LAN device
// with the page's session or the broker's ear could make camgate dial anything for it (SSRF),
// and its errors would map the ports of the LAN. URLs in the config file may name anything.

// cameraGateway is what lan.CheckCameraTarget must know of this gateway, read now (addresses
// change with DHCP). It reads the kernel's address list, no network I/O, so the loop may call it.
func (a *Agent) cameraGateway() lan.Gateway {
	var listeners []net.Addr
	if addr := a.WebAddr(); addr != "" { // also the ONVIF notification endpoints
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			listeners = append(listeners, net.TCPAddrFromAddrPort(ap))
		}
	}
	if p := a.smtpAddr.Load(); p != nil {
		listeners = append(listeners, *p)
	}
	g, err := lan.SystemGateway(listeners)
	if err != nil {
		a.log.Warn("reading the gateway's addresses for the camera address check", "err", err)
	}
	return g
}

// checkCameraURL refuses a camera URL from the page or MQTT that is not a LAN camera's. The
// refusal names the field, and matches lan.ErrTargetRefused.
func (a *Agent) checkCameraURL(raw string) error {
	if err := lan.CheckCameraTarget(raw, a.cameraGateway()); err != nil {
		return &RequestError{Field: "url", Reason: err.Error(), err: err}
	}
	return nil
}

// hideProbeError keeps the owner's reason for a failed test of a camera named from the page
// (a password refused, no such stream) and hides what would tell a remote port's state.
func hideProbeError(err error) error {
	if err == nil || isPasswordRefused(err) {
		return err
	}
	return lan.HideNetworkError(err)
}

// isTargetRefused says whether err is a refusal of checkCameraURL.
func isTargetRefused(err error) bool { return errors.Is(err, lan.ErrTargetRefused) }

// authMarkOf is the auth mark ("basic" or "") of the configured or added camera on rawURL's
// host, so that testing a camera marked auth: basic from the page behaves as its relay does.
// The page itself cannot set the mark: a URL of an unknown host gets Digest only.
func (a *Agent) authMarkOf(rawURL string) string {
	for _, c := range a.view.Load().cameras {
		if c.status.Origin != originDiscovered && c.auth != "" && sameHost(c.status.URL, rawURL) {
			return c.auth
		}
	}
	return ""
}
