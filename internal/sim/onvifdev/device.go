package onvifdev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/onvif"
)

// AuthMode is how the simulated device checks credentials.
type AuthMode int

const (
	AuthNone       AuthMode = iota // every request is accepted
	AuthWSSecurity                 // WS-Security UsernameToken digest in the SOAP header
	AuthHTTPDigest                 // HTTP Digest (RFC 2617, MD5, qop=auth)
)

// Config describes the simulated camera.
type Config struct {
	// Addr is where to serve HTTP, e.g. "127.0.0.1:0".
	Addr string
	// AnnounceHost, when set, replaces the real host in the XAddrs and URIs the device reports
	// (e.g. "0.0.0.0" or a stale address), to exercise clients' fix-ups.
	AnnounceHost string

	Manufacturer, Model, Firmware, Serial, HardwareID, MAC string
	Name, Location                                         string // WS-Discovery scopes

	RTSPURL      string // main stream
	SubRTSPURL   string // sub stream; "" = one profile only
	SnapshotJPEG []byte // served at /snapshot.jpg
	PTZ          bool   // offer a PTZ service and PTZ configuration in profiles
	// NoPullPoint makes the device a camera with Basic Notification only: CreatePullPointSubscription
	// answers an ActionNotSupported fault.
	NoPullPoint bool

	ClockSkew          time.Duration // the device's clock minus the real time
	Auth               AuthMode
	Username, Password string
	// DigestNonceLifetime is how long an HTTP Digest nonce stays valid (default 5 minutes);
	// expired nonces are re-challenged without stale=true, as many cameras do.
	DigestNonceLifetime time.Duration

	// DiscoveryGroup is the WS-Discovery multicast group:port; "" disables discovery.
	DiscoveryGroup string
	// DiscoveryIP is the interface address to join the group on and to answer from.
	DiscoveryIP string
	// EndpointRef is the WS-Discovery identity, a random urn:uuid when empty.
	EndpointRef string

	Logger *slog.Logger
}

// Device is a simulated ONVIF camera: device, media (ver10 and ver20), PTZ and PullPoint events
// services over HTTP, and WS-Discovery.
type Device struct {
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	host string // host:port the device reports

	mu       sync.Mutex
	motion   bool
	subs     map[string]*subscription
	nextSub  int
	ptzLog   []string
	nonces   map[string]bool
	issued   map[string]time.Time // HTTP Digest nonces handed out
	disc     *discovery
	changed  chan struct{} // closed and replaced on every motion change
	requests int
	push     *pushSubscriptions
}

type subscription struct {
	queue       []event
	termination time.Time
}

type event struct {
	when   time.Time
	op     string
	motion bool
}

// New opens the HTTP listener (so XAddr is known before Run) and checks the config.
func New(cfg Config) (*Device, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.EndpointRef == "" {
		cfg.EndpointRef = "urn:uuid:" + uuid()
	}
	for k, v := range map[*string]string{&cfg.Manufacturer: "Camgate", &cfg.Model: "SimCam 1", &cfg.Firmware: "1.0.0",
		&cfg.HardwareID: "SIM-1", &cfg.MAC: "02:00:00:00:00:01"} {
		if *k == "" {
			*k = v
		}
	}
	if cfg.Serial == "" {
		cfg.Serial = strings.ReplaceAll(cfg.MAC, ":", "")
	}
	if cfg.DigestNonceLifetime <= 0 {
		cfg.DigestNonceLifetime = 5 * time.Minute
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Manufacturer + " " + cfg.Model
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("onvifdev: listen %s: %w", cfg.Addr, err)
	}
	host := ln.Addr().String()
	if cfg.AnnounceHost != "" {
		_, port, _ := net.SplitHostPort(host)
		host = net.JoinHostPort(cfg.AnnounceHost, port)
	}
	return &Device{cfg: cfg, log: log, ln: ln, host: host, subs: map[string]*subscription{},
		nonces: map[string]bool{}, issued: map[string]time.Time{}, changed: make(chan struct{}),
		push: newPushSubscriptions(log)}, nil
}

// XAddr is the device service URL on the real listening address.
func (d *Device) XAddr() string { return "http://" + d.ln.Addr().String() + "/onvif/device_service" }

// EndpointRef is the device's WS-Discovery identity.
func (d *Device) EndpointRef() string { return d.cfg.EndpointRef }

// SetMotion raises or clears the motion alarm; every subscription gets a message.
func (d *Device) SetMotion(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.motion == on {
		return
	}
	d.motion = on
	for _, s := range d.subs {
		s.queue = append(s.queue, event{when: d.now(), op: "Changed", motion: on})
	}
	d.push.notify(d.now(), "Changed", on)
	close(d.changed)
	d.changed = make(chan struct{})
}

// Restart forgets every subscription, as a camera reboot does.
func (d *Device) Restart() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.subs = map[string]*subscription{}
	d.push.forget()
	close(d.changed)
	d.changed = make(chan struct{})
}

// PTZLog returns the PTZ commands received, e.g. "ContinuousMove main 0.5 0 0".
func (d *Device) PTZLog() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ptzLog...)
}

// Requests is how many HTTP requests the device has been sent, so that a test can prove a
// client never came (an impostor's address, say).
func (d *Device) Requests() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

// Subscriptions returns the number of live PullPoint subscriptions.
func (d *Device) Subscriptions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.subs)
}

func (d *Device) now() time.Time { return time.Now().Add(d.cfg.ClockSkew).UTC() }

// Run serves HTTP (and WS-Discovery when configured: Hello at start, Bye at the end) until ctx
// ends.
func (d *Device) Run(ctx context.Context) error {
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(d.ln) }()
	var discDone chan struct{}
	if d.cfg.DiscoveryGroup != "" {
		disc, err := d.openDiscovery()
		if err != nil {
			_ = srv.Close()
			return err
		}
		d.mu.Lock()
		d.disc = disc
		d.mu.Unlock()
		discDone = make(chan struct{})
		go func() { defer close(discDone); d.serveDiscovery(ctx, disc) }()
		if err := d.Hello(); err != nil {
			d.log.Warn("onvifdev: hello", "err", err)
		}
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("onvifdev: serve: %w", err)
	}
	if discDone != nil {
		_ = d.Bye()
		d.disc.close()
		<-discDone
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// ServeHTTP answers SOAP on any path but /snapshot.jpg.
func (d *Device) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests++
	d.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/snapshot.jpg" {
		if d.cfg.Auth != AuthNone && !d.checkHTTPDigest(w, r) {
			return
		}
		if len(d.cfg.SnapshotJPEG) == 0 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(d.cfg.SnapshotJPEG)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "SOAP wants POST", http.StatusMethodNotAllowed)
		return
	}
	req, err := readRequest(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		d.fault(w, http.StatusBadRequest, "Sender", "ter:WellFormed", err.Error())
		return
	}
	public := req.op == "GetSystemDateAndTime"
	switch d.cfg.Auth {
	case AuthHTTPDigest:
		if !public && !d.checkHTTPDigest(w, r) {
			return
		}
	case AuthWSSecurity:
		if !public {
			if err := d.checkWSSE(req); err != nil {
				d.log.Debug("onvifdev: ws-security refused", "err", err)
				d.fault(w, http.StatusBadRequest, "Sender", "ter:NotAuthorized", "Sender not Authorized")
				return
			}
		}
	}
	d.dispatch(w, r, req)
}

func (d *Device) checkWSSE(req *request) error {
	if req.get("Username") != d.cfg.Username {
		return errors.New("unknown user")
	}
	nonce, err := base64.StdEncoding.DecodeString(req.get("Nonce"))
	if err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	created := req.get("Created")
	if onvif.WSSEDigest(nonce, created, d.cfg.Password) != req.get("Password") {
		return errors.New("wrong password digest")
	}
	t, err := time.Parse(time.RFC3339Nano, created)
	if err != nil {
		return fmt.Errorf("created: %w", err)
	}
	if skew := t.Sub(d.now()); skew > 5*time.Second || skew < -5*time.Minute {
		return fmt.Errorf("created %s is %s off the device clock", created, skew)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nonces[req.get("Nonce")] {
		return errors.New("replayed nonce")
	}
	if len(d.nonces) > 10000 {
		d.nonces = map[string]bool{}
	}
	d.nonces[req.get("Nonce")] = true
	return nil
}

const realm = "camgate-sim"

func (d *Device) checkHTTPDigest(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if scheme, params, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Digest") {
		p := onvif.ParseAuthParams(params)
		want := onvif.DigestResponse(d.cfg.Username, realm, d.cfg.Password, r.Method, p["uri"], p["nonce"], p["nc"], p["cnonce"], p["qop"])
		d.mu.Lock()
		issued, known := d.issued[p["nonce"]]
		d.mu.Unlock()
		fresh := known && time.Since(issued) < d.cfg.DigestNonceLifetime
		if fresh && p["username"] == d.cfg.Username && p["realm"] == realm && p["response"] == want {
			return true
		}
	}
	nonce := uuid()
	d.mu.Lock()
	if len(d.issued) > 10000 {
		d.issued = map[string]time.Time{}
	}
	d.issued[nonce] = time.Now()
	d.mu.Unlock()
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm=%q, qop="auth", nonce=%q, algorithm=MD5`, realm, nonce))
	http.Error(w, "unauthorized", http.StatusUnauthorized)
	return false
}

func (d *Device) fault(w http.ResponseWriter, status int, code, subcode, reason string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault><env:Code><env:Value>env:%s</env:Value><env:Subcode><env:Value>%s</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">%s</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>`,
		code, subcode, esc(reason))
}

func (d *Device) reply(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	_, _ = w.Write([]byte(envelopeStart + body + envelopeEnd))
}

// The answer envelope uses Dahua-like prefixes on purpose: clients must not depend on them.
const envelopeStart = `<?xml version="1.0" encoding="utf-8" standalone="yes"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tr2="http://www.onvif.org/ver20/media/wsdl" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:tns1="http://www.onvif.org/ver10/topics"><s:Body>`
const envelopeEnd = `</s:Body></s:Envelope>`

func (d *Device) base() string { return "http://" + d.host }

func (d *Device) dispatch(w http.ResponseWriter, r *http.Request, req *request) {
	switch req.op {
	case "GetSystemDateAndTime":
		t := d.now()
		d.reply(w, fmt.Sprintf(`<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime><tt:Time><tt:Hour>%d</tt:Hour><tt:Minute>%d</tt:Minute><tt:Second>%d</tt:Second></tt:Time><tt:Date><tt:Year>%d</tt:Year><tt:Month>%d</tt:Month><tt:Day>%d</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>`,
			t.Hour(), t.Minute(), t.Second(), t.Year(), int(t.Month()), t.Day()))
	case "GetDeviceInformation":
		c := d.cfg
		d.reply(w, fmt.Sprintf(`<tds:GetDeviceInformationResponse><tds:Manufacturer>%s</tds:Manufacturer><tds:Model>%s</tds:Model><tds:FirmwareVersion>%s</tds:FirmwareVersion><tds:SerialNumber>%s</tds:SerialNumber><tds:HardwareId>%s</tds:HardwareId></tds:GetDeviceInformationResponse>`,
			esc(c.Manufacturer), esc(c.Model), esc(c.Firmware), esc(c.Serial), esc(c.HardwareID)))
	case "GetServices":
		var b strings.Builder
		b.WriteString(`<tds:GetServicesResponse>`)
		svc := func(ns, path string) {
			fmt.Fprintf(&b, `<tds:Service><tds:Namespace>%s</tds:Namespace><tds:XAddr>%s%s</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>`, ns, d.base(), path)
		}
		svc("http://www.onvif.org/ver10/device/wsdl", "/onvif/device_service")
		svc("http://www.onvif.org/ver10/media/wsdl", "/onvif/media_service")
		svc("http://www.onvif.org/ver20/media/wsdl", "/onvif/media2_service")
		svc("http://www.onvif.org/ver10/events/wsdl", "/onvif/event_service")
		if d.cfg.PTZ {
			svc("http://www.onvif.org/ver20/ptz/wsdl", "/onvif/ptz_service")
		}
		b.WriteString(`</tds:GetServicesResponse>`)
		d.reply(w, b.String())
	case "GetCapabilities":
		ptz := ""
		if d.cfg.PTZ {
			ptz = `<tt:PTZ><tt:XAddr>` + d.base() + `/onvif/ptz_service</tt:XAddr></tt:PTZ>`
		}
		d.reply(w, `<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device><tt:XAddr>`+d.base()+`/onvif/device_service</tt:XAddr></tt:Device><tt:Events><tt:XAddr>`+d.base()+`/onvif/event_service</tt:XAddr><tt:WSPullPointSupport>`+strconv.FormatBool(!d.cfg.NoPullPoint)+`</tt:WSPullPointSupport></tt:Events><tt:Media><tt:XAddr>`+d.base()+`/onvif/media_service</tt:XAddr></tt:Media>`+ptz+`</tds:Capabilities></tds:GetCapabilitiesResponse>`)
	case "GetNetworkInterfaces":
		d.reply(w, `<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0"><tt:Enabled>true</tt:Enabled><tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>`+esc(d.cfg.MAC)+`</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info></tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>`)
	case "GetProfiles":
		d.reply(w, d.profiles(req.ns == nsMedia2))
	case "GetStreamUri", "GetSnapshotUri":
		d.mediaURI(w, req)
	case "ContinuousMove", "Stop", "GotoPreset", "GetPresets":
		d.ptz(w, req)
	case "Subscribe":
		d.subscribe(w, req)
	case "Renew", "Unsubscribe":
		if r.URL.Path == pushManagerPath {
			d.managePush(w, r, req)
			return
		}
		d.events(w, r, req)
	case "CreatePullPointSubscription", "PullMessages":
		if d.cfg.NoPullPoint {
			d.fault(w, http.StatusBadRequest, "Receiver", "ter:ActionNotSupported", "Action Not Implemented: "+req.op)
			return
		}
		d.events(w, r, req)
	default:
		d.fault(w, http.StatusBadRequest, "Receiver", "ter:ActionNotSupported", "Action Not Implemented: "+req.op)
	}
}

const (
	nsMedia2 = "http://www.onvif.org/ver20/media/wsdl"
	nsPTZ    = "http://www.onvif.org/ver20/ptz/wsdl"
)

type profile struct {
	token, name   string
	width, height int
	fps, kbps     int
	uri           string
}

func (d *Device) profileList() []profile {
	ps := []profile{{"main", "MainStream", 1920, 1080, 25, 4096, d.cfg.RTSPURL}}
	if d.cfg.SubRTSPURL != "" {
		ps = append(ps, profile{"sub", "SubStream", 640, 360, 15, 512, d.cfg.SubRTSPURL})
	}
	return ps
}

func (d *Device) profiles(media2 bool) string {
	var b strings.Builder
	if media2 {
		b.WriteString(`<tr2:GetProfilesResponse>`)
	} else {
		b.WriteString(`<trt:GetProfilesResponse>`)
	}
	for _, p := range d.profileList() {
		ptz := ""
		if d.cfg.PTZ {
			ptz = `<tt:PTZConfiguration token="ptz0"><tt:Name>PTZ</tt:Name><tt:NodeToken>node0</tt:NodeToken></tt:PTZConfiguration>`
		}
		venc := fmt.Sprintf(`<tt:Name>%s</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>%d</tt:BitrateLimit></tt:RateControl>`,
			p.name, p.width, p.height, p.fps, p.kbps)
		if media2 {
			if ptz != "" {
				ptz = `<tr2:PTZ token="ptz0"><tt:Name>PTZ</tt:Name><tt:NodeToken>node0</tt:NodeToken></tr2:PTZ>`
			}
			fmt.Fprintf(&b, `<tr2:Profiles token="%s" fixed="true"><tr2:Name>%s</tr2:Name><tr2:Configurations><tr2:VideoEncoder token="venc_%s">%s</tr2:VideoEncoder><tr2:AudioEncoder token="aenc"><tt:Name>audio</tt:Name><tt:Encoding>MP4A-LATM</tt:Encoding><tt:Bitrate>64</tt:Bitrate><tt:SampleRate>48</tt:SampleRate></tr2:AudioEncoder>%s</tr2:Configurations></tr2:Profiles>`,
				p.token, p.name, p.token, venc, ptz)
		} else {
			fmt.Fprintf(&b, `<trt:Profiles token="%s" fixed="true"><tt:Name>%s</tt:Name><tt:VideoEncoderConfiguration token="venc_%s">%s<tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264></tt:VideoEncoderConfiguration><tt:AudioEncoderConfiguration token="aenc"><tt:Name>audio</tt:Name><tt:Encoding>AAC</tt:Encoding><tt:Bitrate>64</tt:Bitrate><tt:SampleRate>48</tt:SampleRate></tt:AudioEncoderConfiguration>%s</trt:Profiles>`,
				p.token, p.name, p.token, venc, ptz)
		}
	}
	if media2 {
		b.WriteString(`</tr2:GetProfilesResponse>`)
	} else {
		b.WriteString(`</trt:GetProfilesResponse>`)
	}
	return b.String()
}

func (d *Device) mediaURI(w http.ResponseWriter, req *request) {
	token := req.get("ProfileToken")
	var p *profile
	for _, c := range d.profileList() {
		if c.token == token {
			p = &c
		}
	}
	if p == nil {
		d.fault(w, http.StatusBadRequest, "Sender", "ter:NoProfile", "no profile "+token)
		return
	}
	uri := p.uri
	if req.op == "GetSnapshotUri" {
		uri = d.base() + "/snapshot.jpg"
	} else if d.cfg.AnnounceHost != "" {
		if u, err := url.Parse(uri); err == nil {
			if port := u.Port(); port != "" {
				u.Host = net.JoinHostPort(d.cfg.AnnounceHost, port)
			} else {
				u.Host = d.cfg.AnnounceHost
			}
			uri = u.String()
		}
	}
	if req.ns == nsMedia2 {
		d.reply(w, `<tr2:`+req.op+`Response><tr2:Uri>`+esc(uri)+`</tr2:Uri></tr2:`+req.op+`Response>`)
		return
	}
	d.reply(w, `<trt:`+req.op+`Response><trt:MediaUri><tt:Uri>`+esc(uri)+`</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:`+req.op+`Response>`)
}

func (d *Device) ptz(w http.ResponseWriter, req *request) {
	if !d.cfg.PTZ {
		d.fault(w, http.StatusBadRequest, "Receiver", "ter:ActionNotSupported", "no PTZ")
		return
	}
	entry := req.op + " " + req.get("ProfileToken")
	switch req.op {
	case "ContinuousMove":
		entry += " " + req.attr("PanTilt", "x") + " " + req.attr("PanTilt", "y") + " " + req.attr("Zoom", "x")
	case "GotoPreset":
		entry += " " + req.get("PresetToken")
	}
	d.mu.Lock()
	d.ptzLog = append(d.ptzLog, entry)
	d.mu.Unlock()
	if req.op == "GetPresets" {
		d.reply(w, `<tptz:GetPresetsResponse><tptz:Preset token="1"><tt:Name>Gate</tt:Name></tptz:Preset><tptz:Preset token="2"><tt:Name>Porch</tt:Name></tptz:Preset></tptz:GetPresetsResponse>`)
		return
	}
	d.reply(w, `<tptz:`+req.op+`Response/>`)
}

func (d *Device) events(w http.ResponseWriter, r *http.Request, req *request) {
	switch req.op {
	case "CreatePullPointSubscription":
		life := parseDuration(req.get("InitialTerminationTime"), time.Minute)
		d.mu.Lock()
		d.nextSub++
		id := strconv.Itoa(d.nextSub)
		now := d.now()
		d.subs[id] = &subscription{
			queue:       []event{{when: now, op: "Initialized", motion: d.motion}},
			termination: now.Add(life),
		}
		d.mu.Unlock()
		d.reply(w, fmt.Sprintf(`<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa5:Address>%s/onvif/subscription?id=%s</wsa5:Address></tev:SubscriptionReference><wsnt:CurrentTime>%s</wsnt:CurrentTime><wsnt:TerminationTime>%s</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>`,
			d.base(), id, stamp(now), stamp(now.Add(life))))
	case "PullMessages":
		id := r.URL.Query().Get("id")
		timeout := min(parseDuration(req.get("Timeout"), 10*time.Second), time.Minute)
		limit, _ := strconv.Atoi(req.get("MessageLimit"))
		if limit <= 0 {
			limit = 100
		}
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		for {
			d.mu.Lock()
			s, ok := d.subs[id]
			if !ok {
				d.mu.Unlock()
				d.fault(w, http.StatusBadRequest, "Sender", "wsrf-rw:ResourceUnknownFault", "unknown subscription "+id)
				return
			}
			if len(s.queue) > 0 {
				n := min(limit, len(s.queue))
				evs := s.queue[:n]
				s.queue = append([]event(nil), s.queue[n:]...)
				term := s.termination
				d.mu.Unlock()
				d.reply(w, d.pullAnswer(evs, term))
				return
			}
			changed := d.changed
			term := s.termination
			d.mu.Unlock()
			select {
			case <-changed:
			case <-deadline.C:
				d.reply(w, d.pullAnswer(nil, term))
				return
			case <-r.Context().Done():
				return
			}
		}
	case "Renew":
		id := r.URL.Query().Get("id")
		life := parseDuration(req.get("TerminationTime"), time.Minute)
		d.mu.Lock()
		s, ok := d.subs[id]
		now := d.now()
		if ok {
			s.termination = now.Add(life)
		}
		d.mu.Unlock()
		if !ok {
			d.fault(w, http.StatusBadRequest, "Sender", "wsrf-rw:ResourceUnknownFault", "unknown subscription "+id)
			return
		}
		d.reply(w, fmt.Sprintf(`<wsnt:RenewResponse><wsnt:TerminationTime>%s</wsnt:TerminationTime><wsnt:CurrentTime>%s</wsnt:CurrentTime></wsnt:RenewResponse>`, stamp(now.Add(life)), stamp(now)))
	case "Unsubscribe":
		d.mu.Lock()
		delete(d.subs, r.URL.Query().Get("id"))
		d.mu.Unlock()
		d.reply(w, `<wsnt:UnsubscribeResponse/>`)
	}
}

// pullAnswer reports each motion change twice, as many cameras do: as the VideoSource motion
// alarm and as the rule engine's cell motion detector.
func (d *Device) pullAnswer(evs []event, term time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<tev:PullMessagesResponse><tev:CurrentTime>%s</tev:CurrentTime><tev:TerminationTime>%s</tev:TerminationTime>`, stamp(d.now()), stamp(term))
	for _, e := range evs {
		fmt.Fprintf(&b, `<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:VideoSource/MotionAlarm</wsnt:Topic><wsnt:Message><tt:Message UtcTime="%s" PropertyOperation="%s"><tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source><tt:Data><tt:SimpleItem Name="State" Value="%t"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>`,
			stamp(e.when), e.op, e.motion)
		fmt.Fprintf(&b, `<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message UtcTime="%s" PropertyOperation="%s"><tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSource_1"/><tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsToken"/><tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/></tt:Source><tt:Data><tt:SimpleItem Name="IsMotion" Value="%t"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>`,
			stamp(e.when), e.op, e.motion)
	}
	b.WriteString(`</tev:PullMessagesResponse>`)
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// parseDuration reads the simple xs:duration forms clients send (PT10S, PT1M, PT1H30M).
func parseDuration(s string, def time.Duration) time.Duration {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "PT")
	if !ok || rest == "" {
		return def
	}
	d, err := time.ParseDuration(strings.ToLower(rest))
	if err != nil || d <= 0 {
		return def
	}
	return d
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
