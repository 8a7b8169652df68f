package agent

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/camgate/camgate/internal/endpoint"
	"github.com/camgate/camgate/internal/lan"
	"github.com/camgate/camgate/internal/redirect"
	"github.com/camgate/camgate/rtsp"
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
	if answeredInAnotherProtocol(err) || errors.Is(err, rtsp.ErrNoRTSPAnswer) {
		return lan.ErrNoAnswer // "not a camera" reads like no answer, and never quotes a banner
	}
	return lan.HideNetworkError(err)
}

// answeredInAnotherProtocol matches the errors of a peer that gave no RTSP or HTTP answer: it
// hung up, or spoke another protocol (an SSH or SMTP banner, say). For HTTP that is any error of
// the transport (net/http wraps it in a *url.Error, but for one of its own words, as "server
// closed idle connection"), except a refused redirect and a certificate problem, which a
// camera's answer caused. gortsplib's response parser does not type its errors, so for RTSP its
// words are matched.
func answeredInAnotherProtocol(err error) bool {
	var ue *url.Error
	var cert *tls.CertificateVerificationError
	if errors.As(err, &ue) && !errors.Is(err, redirect.ErrOtherHost) && !errors.As(err, &cert) {
		return true
	}
	msg := err.Error()
	for _, words := range []string{"expected 'RTSP/1.0'", "unable to parse status code", "buffer length exceeds"} {
		if strings.Contains(msg, words) {
			return true
		}
	}
	return false
}

// isTargetRefused says whether err is a refusal of checkCameraURL.
func isTargetRefused(err error) bool { return errors.Is(err, lan.ErrTargetRefused) }

// authMarkOf is the auth mark ("basic" or "") of the configured or added camera at rawURL's
// host and port, so that testing a camera marked auth: basic from the page behaves as its relay
// does. The page itself cannot set the mark: any other address gets Digest only.
func (a *Agent) authMarkOf(rawURL string) string {
	want := hostPort(rawURL)
	for _, c := range a.view.Load().cameras {
		if c.status.Origin != originDiscovered && c.auth != "" && want != "" && hostPort(c.status.URL) == want {
			return c.auth
		}
	}
	return ""
}

// hostPort is a URL's host and port, the scheme's default port filled in.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"rtsp": "554", "rtsps": "322", "http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(endpoint.NormalHost(u.Hostname()), port)
}
