package onvif

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// MaxSnapshotBytes bounds a snapshot download; camera JPEGs are well under 1 MiB.
const MaxSnapshotBytes = 4 << 20

// Profile is one media profile, from Media (ver10) or Media2 (ver20).
type Profile struct {
	Token       string
	Name        string
	Codec       string // H264, H265, JPEG, MPEG4 or what the device said
	Width       int
	Height      int
	FPS         float64
	BitrateKbps int // 0 when unknown or unlimited
	AudioCodec  string
	HasPTZ      bool
	StreamURI   string // filled by Inventory
	SnapshotURI string // filled by Inventory
}

// GetProfiles lists the profiles of the Media (ver10) service.
func (c *Client) GetProfiles(ctx context.Context) ([]Profile, error) {
	res, err := c.call(ctx, c.service(func(s Services) string { return s.Media }), nsMedia, "GetProfiles",
		`<trt:GetProfiles/>`)
	if err != nil {
		return nil, err
	}
	return parseProfiles(res), nil
}

// GetProfiles2 lists the profiles of the Media2 (ver20) service.
func (c *Client) GetProfiles2(ctx context.Context) ([]Profile, error) {
	res, err := c.call(ctx, c.service(func(s Services) string { return s.Media2 }), nsMedia2, "GetProfiles",
		`<tr2:GetProfiles><tr2:Type>All</tr2:Type></tr2:GetProfiles>`)
	if err != nil {
		return nil, err
	}
	return parseProfiles(res), nil
}

// parseProfiles reads both shapes: ver10 has VideoEncoderConfiguration etc. directly in the
// profile, ver20 nests VideoEncoder etc. in Configurations.
func parseProfiles(res *element) []Profile {
	var out []Profile
	for _, pe := range res.all("Profiles") {
		p := Profile{Token: pe.attr("token"), Name: pe.child("Name").text()}
		venc := pe.child("VideoEncoderConfiguration")
		aenc := pe.child("AudioEncoderConfiguration")
		ptz := pe.child("PTZConfiguration")
		if cfg := pe.child("Configurations"); cfg != nil {
			venc = cfg.child("VideoEncoder")
			aenc = cfg.child("AudioEncoder")
			ptz = cfg.child("PTZ")
		}
		if venc != nil {
			p.Codec = videoCodec(venc.child("Encoding").text())
			p.Width = atoi(venc.path("Resolution", "Width").text())
			p.Height = atoi(venc.path("Resolution", "Height").text())
			rc := venc.child("RateControl")
			p.FPS, _ = strconv.ParseFloat(rc.child("FrameRateLimit").text(), 64)
			if b := atoi(rc.child("BitrateLimit").text()); b > 0 && b < 1<<30 {
				p.BitrateKbps = b
			}
		}
		if aenc != nil {
			p.AudioCodec = audioCodec(aenc.child("Encoding").text())
		}
		p.HasPTZ = ptz != nil
		out = append(out, p)
	}
	return out
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

func videoCodec(s string) string {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "H264", "H.264", "AVC":
		return "H264"
	case "H265", "H.265", "HEVC":
		return "H265"
	case "JPEG", "MJPEG":
		return "JPEG"
	case "MPEG4", "MP4V-ES":
		return "MPEG4"
	}
	return strings.TrimSpace(s)
}

func audioCodec(s string) string {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "G711", "PCMU", "PCMA":
		return "G711"
	case "AAC", "MP4A-LATM", "MPEG4-GENERIC":
		return "AAC"
	case "G726":
		return "G726"
	case "OPUS":
		return "OPUS"
	}
	return strings.TrimSpace(s)
}

// GetStreamURI asks Media (ver10) for the RTP-Unicast over RTSP URI of a profile. The URI is
// returned as the device sent it; Inventory rewrites bad hosts.
func (c *Client) GetStreamURI(ctx context.Context, profileToken string) (string, error) {
	body := `<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>` +
		`<tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>` +
		xmlEscape(profileToken) + `</trt:ProfileToken></trt:GetStreamUri>`
	return c.uriCall(ctx, c.service(func(s Services) string { return s.Media }), nsMedia, "GetStreamUri", body)
}

// GetStreamURI2 asks Media2 (ver20) for the RTSP URI of a profile.
func (c *Client) GetStreamURI2(ctx context.Context, profileToken string) (string, error) {
	body := `<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol><tr2:ProfileToken>` + xmlEscape(profileToken) +
		`</tr2:ProfileToken></tr2:GetStreamUri>`
	return c.uriCall(ctx, c.service(func(s Services) string { return s.Media2 }), nsMedia2, "GetStreamUri", body)
}

// GetSnapshotURI asks Media (ver10) for the JPEG snapshot URI of a profile.
func (c *Client) GetSnapshotURI(ctx context.Context, profileToken string) (string, error) {
	body := `<trt:GetSnapshotUri><trt:ProfileToken>` + xmlEscape(profileToken) + `</trt:ProfileToken></trt:GetSnapshotUri>`
	return c.uriCall(ctx, c.service(func(s Services) string { return s.Media }), nsMedia, "GetSnapshotUri", body)
}

// GetSnapshotURI2 asks Media2 (ver20) for the JPEG snapshot URI of a profile.
func (c *Client) GetSnapshotURI2(ctx context.Context, profileToken string) (string, error) {
	body := `<tr2:GetSnapshotUri><tr2:ProfileToken>` + xmlEscape(profileToken) + `</tr2:ProfileToken></tr2:GetSnapshotUri>`
	return c.uriCall(ctx, c.service(func(s Services) string { return s.Media2 }), nsMedia2, "GetSnapshotUri", body)
}

func (c *Client) uriCall(ctx context.Context, endpoint, ns, op, body string) (string, error) {
	res, err := c.call(ctx, endpoint, ns, op, body)
	if err != nil {
		return "", err
	}
	uri := res.find("Uri").text()
	if uri == "" {
		return "", fmt.Errorf("onvif %s: %s: answer has no Uri", c.xaddr, op)
	}
	return uri, nil
}

// Snapshot fetches a JPEG from a snapshot URI with the client's credentials (HTTP Digest or
// Basic, as the camera asks), refusing bodies over MaxSnapshotBytes and non-JPEG answers.
func (c *Client) Snapshot(ctx context.Context, uri string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var auth string
	// The password goes only to the device's own host: a snapshot URI is the camera's say.
	creds := c.username != "" && sameHostname(uri, c.base.Hostname())
	for attempt := 0; attempt < 2; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
		if err != nil {
			return nil, fmt.Errorf("onvif %s: snapshot: %w", c.xaddr, err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("onvif %s: snapshot: %w", c.xaddr, err)
		}
		data, rerr := readLimited(resp.Body, MaxSnapshotBytes)
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && creds {
			ch := challenges(resp.Header.Values("WWW-Authenticate"))
			switch {
			case ch["digest"] != "":
				auth = newDigestChallenge(ch["digest"]).authorization(http.MethodGet, req.URL.RequestURI(), c.username, c.password)
				continue
			case hasKey(ch, "basic") && !c.basicAllowed(uri):
				return nil, fmt.Errorf("onvif %s: snapshot: %w", c.xaddr, ErrBasicRefused)
			case hasKey(ch, "basic"):
				r, _ := http.NewRequest(http.MethodGet, uri, nil)
				r.SetBasicAuth(c.username, c.password)
				auth = r.Header.Get("Authorization")
				continue
			}
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, &AuthError{Device: c.xaddr, Username: c.username, Tried: "HTTP digest/basic",
				Cause: fmt.Errorf("snapshot %s: HTTP 401", uri)}
		}
		if rerr != nil {
			return nil, fmt.Errorf("onvif %s: snapshot: %w", c.xaddr, rerr)
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("onvif %s: snapshot: HTTP %s", c.xaddr, resp.Status)
		}
		if !bytes.HasPrefix(data, []byte{0xFF, 0xD8}) {
			return nil, fmt.Errorf("onvif %s: snapshot: answer is not a JPEG (%s)", c.xaddr, resp.Header.Get("Content-Type"))
		}
		return data, nil
	}
	return nil, errors.New("unreachable")
}

func sameHostname(rawURL, host string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && strings.EqualFold(u.Hostname(), host)
}
