package onvif

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/redirect"
)

// Namespaces of the services the client talks to (the action URIs are built from them).
const (
	nsDevice  = "http://www.onvif.org/ver10/device/wsdl"
	nsMedia   = "http://www.onvif.org/ver10/media/wsdl"
	nsMedia2  = "http://www.onvif.org/ver20/media/wsdl"
	nsPTZ     = "http://www.onvif.org/ver20/ptz/wsdl"
	nsEvents  = "http://www.onvif.org/ver10/events/wsdl"
	nsImaging = "http://www.onvif.org/ver20/imaging/wsdl"
	nsSchema  = "http://www.onvif.org/ver10/schema"
)

// DefaultTimeout bounds each request whose context has no earlier deadline.
const DefaultTimeout = 10 * time.Second

// ClientConfig describes one ONVIF device.
type ClientConfig struct {
	XAddr    string // device service URL, e.g. http://10.0.0.20/onvif/device_service
	Username string // empty: no authentication
	Password string
	// AllowBasic lets the password go out in HTTP Basic over plain http:// when the device asks
	// for nothing better: the camera's `auth: basic` mark. Without it Basic is answered only over
	// https://, and a Basic-only device over http:// fails with ErrBasicRefused.
	AllowBasic bool
	// HTTPClient is used for every request (copied, so that its redirects stay on the device's
	// host: see internal/redirect); nil means a client without a client-wide timeout.
	HTTPClient *http.Client
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Client talks to one device. It is safe for concurrent use; it remembers the device's clock
// offset, the authentication scheme that worked and the service addresses it learned.
type Client struct {
	xaddr    string
	base     *url.URL
	username string
	password string
	allowBas bool
	http     *http.Client
	timeout  time.Duration
	log      *slog.Logger

	mu       sync.Mutex
	offset   time.Duration // device clock minus ours
	synced   bool
	digest   *digestChallenge
	basic    bool
	services Services
}

// NewClient checks the XAddr and returns a client; it sends nothing. User information in the
// XAddr is taken as the credentials when cfg has none, and is never kept in it: net/http would
// send it as Basic with every request, unasked and over plain http, and every error quotes it.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.XAddr)
	if err != nil {
		if strings.Contains(cfg.XAddr, "@") { // the parse error quotes the URL, password and all
			return nil, errors.New("onvif: xaddr is not a URL")
		}
		return nil, fmt.Errorf("onvif: xaddr %q: %w", cfg.XAddr, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("onvif: xaddr %q: want an http(s)://host/... URL", u.Redacted())
	}
	xaddr, username, password := cfg.XAddr, cfg.Username, cfg.Password
	if u.User != nil {
		if username == "" {
			username = u.User.Username()
			password, _ = u.User.Password()
		}
		u.User = nil
		xaddr = u.String()
	}
	c := &Client{
		xaddr:    xaddr,
		base:     u,
		username: username,
		password: password,
		allowBas: cfg.AllowBasic,
		// A 307 would re-POST the envelope, WS-Security token and all, wherever it points.
		// No client-wide timeout: every request carries a context deadline, and PullMessages
		// long polls need longer than other calls.
		http:    redirect.Client(cfg.HTTPClient),
		timeout: cfg.Timeout,
		log:     cfg.Logger,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// XAddr returns the device service URL.
func (c *Client) XAddr() string { return c.xaddr }

// ClockOffset returns the device's clock minus ours, as measured by SyncClock.
func (c *Client) ClockOffset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// deviceNow is our clock moved onto the device's.
func (c *Client) deviceNow() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// call sends one SOAP 1.2 request and returns the first element inside the answer's Body.
// Authentication: WS-Security digest in the envelope (with the device's clock), and HTTP Digest
// or Basic when the device answers 401 with a challenge.
func (c *Client) call(ctx context.Context, endpoint, ns, op, body string, opts ...callOption) (*element, error) {
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	if endpoint == "" {
		endpoint = c.xaddr
	}
	withCreds := c.username != "" && !o.anonymous
	action := ns + "/" + op
	if o.action != "" {
		action = o.action
	}
	resynced, freshDigest := false, false
	var tried []string
	for attempt := 0; attempt < 4; attempt++ {
		res, status, hdr, err := c.roundTrip(ctx, endpoint, action, c.envelope(withCreds, o.header, body), op,
			o.anonymous && c.username == "", o.extra)
		if err != nil {
			return nil, err
		}
		if status == http.StatusUnauthorized {
			ch := challenges(hdr.Values("WWW-Authenticate"))
			c.mu.Lock()
			haveDigest, haveBasic := c.digest != nil, c.basic
			c.mu.Unlock()
			switch {
			case c.username == "":
				return nil, &AuthError{Device: c.xaddr, Tried: "no credentials", Cause: fmt.Errorf("%s: HTTP 401", op)}
			case ch["digest"] != "" && !freshDigest:
				// A new challenge, or a nonce of ours that expired (not every camera says
				// stale=true): answer it once per call before blaming the password.
				c.mu.Lock()
				c.digest = newDigestChallenge(ch["digest"])
				c.mu.Unlock()
				freshDigest = true
				tried = append(tried, "HTTP digest")
				continue
			case hasKey(ch, "basic") && !haveBasic && !haveDigest && !c.basicAllowed(endpoint):
				return nil, fmt.Errorf("onvif %s: %s: %w", c.xaddr, op, ErrBasicRefused)
			case hasKey(ch, "basic") && !haveBasic && !haveDigest:
				c.mu.Lock()
				c.basic = true
				c.mu.Unlock()
				tried = append(tried, "HTTP basic")
				continue
			}
			if withCreds {
				tried = append([]string{"WS-Security digest"}, tried...)
			}
			return nil, &AuthError{Device: c.xaddr, Username: c.username, Tried: strings.Join(dedup(tried), ", "),
				Cause: fmt.Errorf("%s: HTTP 401", op)}
		}
		if res == nil {
			return nil, fmt.Errorf("onvif %s: %s: HTTP %d without a SOAP answer", c.xaddr, op, status)
		}
		if f, ok := res.(*Fault); ok {
			if withCreds && isAuthFault(f) {
				// The usual cause is a clock the token's Created falls outside of: measure it
				// once and try again before blaming the password.
				if !resynced && !o.anonymous {
					resynced = true
					c.mu.Lock()
					synced := c.synced
					c.mu.Unlock()
					if !synced {
						if _, err := c.SyncClock(ctx); err == nil {
							continue
						}
					}
				}
				tried = append([]string{"WS-Security digest"}, tried...)
				return nil, &AuthError{Device: c.xaddr, Username: c.username, Tried: strings.Join(dedup(tried), ", "), Cause: f}
			}
			return nil, f
		}
		return res.(*element), nil
	}
	return nil, &AuthError{Device: c.xaddr, Username: c.username, Tried: strings.Join(dedup(tried), ", "),
		Cause: fmt.Errorf("%s: gave up after repeated challenges", op)}
}

// basicAllowed reports whether the password may go to rawURL in HTTP Basic: over TLS, or for a
// camera marked auth: basic.
func (c *Client) basicAllowed(rawURL string) bool {
	if c.allowBas {
		return true
	}
	u, err := url.Parse(rawURL)
	return err == nil && strings.EqualFold(u.Scheme, "https")
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func dedup(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

type callOptions struct {
	anonymous bool          // no credentials (GetSystemDateAndTime must work before the clock is known)
	header    string        // extra SOAP header elements (WS-Addressing)
	action    string        // SOAP action when it is not namespace/operation
	extra     time.Duration // added to the request timeout (long polls)
}

type callOption func(*callOptions)

func anonymous() callOption { return func(o *callOptions) { o.anonymous = true } }

func withHeader(h string) callOption { return func(o *callOptions) { o.header = h } }

func withAction(a string) callOption { return func(o *callOptions) { o.action = a } }

func withExtraTime(d time.Duration) callOption { return func(o *callOptions) { o.extra = d } }

func (c *Client) envelope(withCreds bool, header, body string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	b.WriteString(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="` + nsDevice +
		`" xmlns:trt="` + nsMedia + `" xmlns:tr2="` + nsMedia2 + `" xmlns:tptz="` + nsPTZ +
		`" xmlns:tev="` + nsEvents + `" xmlns:tt="` + nsSchema +
		`" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:wsa="http://www.w3.org/2005/08/addressing">`)
	if withCreds || header != "" {
		b.WriteString(`<s:Header>`)
		if withCreds {
			b.WriteString(wsseHeader(c.username, c.password, c.deviceNow()))
		}
		b.WriteString(header)
		b.WriteString(`</s:Header>`)
	}
	b.WriteString(`<s:Body>`)
	b.WriteString(body)
	b.WriteString(`</s:Body></s:Envelope>`)
	return b.Bytes()
}

// roundTrip posts one envelope. It returns the parsed answer (*element or *Fault), or nil with the
// status when there was none worth parsing.
func (c *Client) roundTrip(
	ctx context.Context, endpoint, action string, env []byte, op string, noHTTPAuth bool, extra time.Duration,
) (any, int, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+extra)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(env))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("onvif %s: %s: %w", c.xaddr, op, err)
	}
	req.Header.Set("Content-Type", `application/soap+xml; charset=utf-8; action="`+action+`"`)
	if !noHTTPAuth {
		c.setHTTPAuth(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("onvif %s: %s: %w", c.xaddr, op, err)
	}
	defer resp.Body.Close()
	data, err := readLimited(resp.Body, maxBodyBytes)
	if err != nil {
		return nil, resp.StatusCode, resp.Header, fmt.Errorf("onvif %s: %s: reading answer: %w", c.xaddr, op, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, resp.StatusCode, resp.Header, nil
	}
	body, err := parseEnvelope(data)
	if err != nil {
		if resp.StatusCode/100 != 2 {
			return nil, resp.StatusCode, resp.Header, fmt.Errorf("onvif %s: %s: HTTP %s", c.xaddr, op, resp.Status)
		}
		return nil, resp.StatusCode, resp.Header, fmt.Errorf("onvif %s: %s: %w", c.xaddr, op, err)
	}
	if f := faultOf(body); f != nil {
		f.Device, f.Action = c.xaddr, op
		return f, resp.StatusCode, resp.Header, nil
	}
	if resp.StatusCode/100 != 2 {
		return nil, resp.StatusCode, resp.Header, fmt.Errorf("onvif %s: %s: HTTP %s", c.xaddr, op, resp.Status)
	}
	if len(body.Children) == 0 {
		return nil, resp.StatusCode, resp.Header, fmt.Errorf("onvif %s: %s: empty SOAP body", c.xaddr, op)
	}
	return body.Children[0], resp.StatusCode, resp.Header, nil
}

func (c *Client) setHTTPAuth(req *http.Request) {
	c.mu.Lock()
	d, basic := c.digest, c.basic
	c.mu.Unlock()
	switch {
	case d != nil:
		req.Header.Set("Authorization", d.authorization(req.Method, req.URL.RequestURI(), c.username, c.password))
	case basic:
		req.SetBasicAuth(c.username, c.password)
	}
}

// readLimited reads at most limit bytes and fails, rather than truncating, when there is more.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(limit)
	}
	return data, nil
}

// parseEnvelope checks the document is a SOAP envelope and returns its Body.
func parseEnvelope(data []byte) (*element, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	if root.Name != "Envelope" {
		return nil, fmt.Errorf("not a SOAP envelope (root element <%s>)", root.Name)
	}
	body := root.child("Body")
	if body == nil {
		return nil, errors.New("SOAP envelope without a Body")
	}
	return body, nil
}

// faultOf returns the SOAP 1.2 or 1.1 fault in a Body, or nil.
func faultOf(body *element) *Fault {
	fe := body.child("Fault")
	if fe == nil {
		return nil
	}
	f := &Fault{}
	if code := fe.child("Code"); code != nil { // SOAP 1.2
		f.Code = localPart(code.child("Value").text())
		for sub := code.child("Subcode"); sub != nil; sub = sub.child("Subcode") {
			if v := localPart(sub.child("Value").text()); v != "" {
				f.Subcode = v
			}
		}
		f.Reason = fe.path("Reason", "Text").text()
	} else { // SOAP 1.1
		f.Code = localPart(fe.child("faultcode").text())
		f.Reason = fe.child("faultstring").text()
	}
	if f.Reason == "" {
		f.Reason = fe.find("Text").text()
	}
	return f
}

func localPart(s string) string {
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return s
}
