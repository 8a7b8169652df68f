package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/camgate/camgate/internal/endpoint"
)

// Bounds on what the page may send; generous for people, small for a flood.
const (
	maxCodeLen     = 64
	maxNameLen     = 128
	maxUserLen     = 128
	maxPasswordLen = 256
	maxURLLen      = 2048
	maxIDLen       = 128
	maxEventSinks  = 16
	qrSize         = 384
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a write error is a client gone: nothing to tell it
}

// decodeJSON reads one JSON value of bounded size into v, refusing unknown fields and
// trailing data; on failure it has answered the request and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !isJSONContentType(ct) {
		// A form cannot send application/json without a CORS preflight, so this also keeps
		// plain cross-site forms out.
		writeCoded(w, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "request body must be application/json")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := decodeStrict(r.Body, v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeCoded(
				w,
				http.StatusRequestEntityTooLarge,
				CodeBodyTooLarge,
				fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes),
			)
			return false
		}
		writeCoded(w, http.StatusBadRequest, CodeBadBody, "bad request body: "+err.Error())
		return false
	}
	return true
}

func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return errors.New("data after the JSON value")
	}
	return nil
}

// clientAddr is the peer's address; no forwarding header is trusted, there is no proxy.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return ap.Addr().Unmap()
}

func (s *Server) sessionID(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// setupCode returns the setup code now, or answers 500 when there is none: nobody logs in
// then. A code other than the last one seen ends every session (a rotation), and says so once.
func (s *Server) setupCode(w http.ResponseWriter) (string, codeTag, bool) {
	code, err := s.cfg.Code()
	if err == nil && normalizeCode(code) == "" {
		err = errors.New("the setup code is empty")
	}
	if err != nil {
		msg := err.Error()
		if prev := s.codeErr.Swap(&msg); prev == nil || *prev != msg {
			s.log.Error("pairing page: no setup code, nobody can log in: `camgate pair-code` makes one", "err", err)
		}
		writeCoded(w, http.StatusInternalServerError, CodeInternal, "the setup code cannot be read: see the gateway's log")
		return "", codeTag{}, false
	}
	s.codeErr.Store(nil)
	tag := tagOf(code)
	if s.sessions.rekey(tag) {
		s.log.Info("pairing page: the setup code changed: every session ended")
	}
	return code, tag, true
}

// requireSession answers 401 without a live session and 403 for a state change whose
// X-CSRF-Token does not match the session's.
func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, tag, ok := s.setupCode(w)
		if !ok {
			return
		}
		csrf, ok := s.sessions.lookup(s.sessionID(r), s.now(), tag)
		if !ok {
			writeCoded(w, http.StatusUnauthorized, CodeLoginRequired, "log in with the setup code first")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !tokenMatches(r.Header.Get(csrfHeader), csrf) {
				writeCoded(w, http.StatusForbidden, CodeCSRFToken, "missing or wrong "+csrfHeader+" header")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	client := clientAddr(r)
	at := s.now()
	if ok, wait := s.limiter.attempt(client, at); !ok {
		s.loginRefused.Add(1)
		secs := int((wait + 999_999_999) / 1_000_000_000)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		writeCoded(
			w,
			http.StatusTooManyRequests,
			CodeTooManyAttempts,
			fmt.Sprintf("too many wrong codes: try again in %d s", max(secs, 1)),
		)
		return
	}
	var req struct {
		Code string `json:"code"`
	}
	if !decodeJSON(w, r, &req) {
		s.limiter.forgive(client, at) // no code was tried
		return
	}
	want, tag, ok := s.setupCode(w)
	if !ok {
		s.limiter.forgive(client, at)
		return
	}
	if len(req.Code) > maxCodeLen || !codeMatches(req.Code, want) {
		s.loginFailed.Add(1)
		s.log.Warn("pairing page: wrong setup code", "client", client.String())
		writeCoded(w, http.StatusUnauthorized, CodeWrongSetupCode, "wrong setup code")
		return
	}
	s.limiter.forgive(client, at)
	// A fresh id on every login, so an id planted before login is worth nothing.
	if old := s.sessionID(r); old != "" {
		s.sessions.remove(old)
	}
	id, csrf := s.sessions.create(s.now(), tag)
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	s.log.Info("pairing page: logged in", "client", client.String())
	writeJSON(w, http.StatusOK, sessionInfo{LoggedIn: true, CSRFToken: csrf})
}

type sessionInfo struct {
	LoggedIn  bool   `json:"logged_in"`
	CSRFToken string `json:"csrf_token,omitempty"`
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	_, tag, ok := s.setupCode(w)
	if !ok {
		return
	}
	csrf, ok := s.sessions.lookup(s.sessionID(r), s.now(), tag)
	writeJSON(w, http.StatusOK, sessionInfo{LoggedIn: ok, CSRFToken: csrf})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.sessions.remove(s.sessionID(r))
	http.SetCookie(
		w,
		&http.Cookie{
			Name:     sessionCookie,
			Value:    "",
			Path:     "/",
			MaxAge:   -1,
			HttpOnly: true,
			SameSite: http.SameSiteStrictMode,
		},
	)
	w.WriteHeader(http.StatusNoContent)
}

// backendError answers err from the Backend with a status that fits, never repeating a secret
// the request carried.
func (s *Server) backendError(w http.ResponseWriter, r *http.Request, err error, secrets ...string) {
	msg := redact(err.Error(), secrets...)
	var bad *BadRequestError
	switch {
	case errors.As(err, &bad):
		writeInvalid(w, err, secrets...)
	case errors.Is(err, ErrCameraUnauthorized):
		writeCoded(w, http.StatusUnprocessableEntity, CodeCameraUnauthorized, msg)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, msg)
	case errors.Is(err, ErrExists):
		writeCoded(w, http.StatusConflict, CodeCameraExists, msg)
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, msg)
	default:
		s.log.Error("pairing page: backend", "method", r.Method, "path", r.URL.Path, "err", msg)
		writeError(w, http.StatusInternalServerError, msg)
	}
}

// redact replaces each non-empty secret in msg, so an error that quotes a URL with its
// password does not carry it to the page.
func redact(msg string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, "***")
			if esc := url.QueryEscape(sec); esc != sec {
				msg = strings.ReplaceAll(msg, esc, "***")
			}
			if esc := url.PathEscape(sec); esc != sec {
				msg = strings.ReplaceAll(msg, esc, "***")
			}
		}
	}
	return msg
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	st := s.cfg.Backend.Status(ctx)
	if st.Version == "" {
		st.Version = s.cfg.Version
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) cameras(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	cams := s.cfg.Backend.Cameras(ctx)
	if cams == nil {
		cams = []Camera{}
	}
	for i := range cams {
		cams[i] = scrubCamera(cams[i])
	}
	writeJSON(w, http.StatusOK, struct {
		Cameras []Camera `json:"cameras"`
	}{cams})
}

// scrubCamera removes user information from the camera's addresses: whatever the agent hands
// over, the page never receives a password.
func scrubCamera(c Camera) Camera {
	c.URL = stripUserinfo(c.URL)
	c.ONVIF = stripUserinfo(c.ONVIF)
	return c
}

// stripUserinfo drops user:password@ from a URL; text that does not parse as one is dropped
// whole if it has an @ (it might still hold a password), else kept.
func stripUserinfo(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return ""
		}
		return raw
	}
	if u.User == nil {
		return raw // as written: re-encoding would turn {stream_name} into %7Bstream_name%7D
	}
	// Cut the user information where url.Parse found it: the last '@' of the authority.
	scheme, after, _ := strings.Cut(raw, "://")
	authority := after
	if end := strings.IndexAny(after, "/?#"); end >= 0 {
		authority = after[:end]
	}
	return scheme + "://" + after[strings.LastIndex(authority, "@")+1:]
}

// stripPassword keeps the user name but drops the password of a URL.
func stripPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return stripUserinfo(raw)
	}
	if u.User != nil {
		if _, set := u.User.Password(); set {
			u.User = url.User(u.User.Username())
		}
	}
	return u.String()
}

// splitCredentials parses raw as a URL with one of schemes and moves any user:password@ out of
// it. People paste rtsp://admin:secret@10.0.0.20/... as the camera's manual shows it.
func splitCredentials(field, raw string, schemes ...string) (clean, user, pass string, err error) {
	raw = strings.TrimSpace(raw)
	if len(raw) > maxURLLen {
		return "", "", "", &BadRequestError{Field: field, Code: CodeTooLong, Reason: "is too long"}
	}
	raw, user, pass = cutUserinfo(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", &BadRequestError{Field: field, Code: CodeBadURL, Reason: "is not a URL"}
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	if !ok {
		return "", "", "", &BadRequestError{
			Field:  field,
			Code:   CodeBadScheme,
			Reason: "scheme must be " + strings.Join(schemes, ", "),
		}
	}
	if u.Host == "" {
		return "", "", "", &BadRequestError{Field: field, Code: CodeBadURL, Reason: "has no host"}
	}
	// The URL as written, not u.String(): re-encoding would turn flussonic.publish's
	// {stream_name} into %7Bstream_name%7D, which no longer marks where the name goes.
	return raw, user, pass, nil
}

// cutUserinfo takes user:password@ out of a URL by hand rather than with url.Parse, because
// people type passwords as they are (with spaces, '#', '/', '@' or '%') and the URL must still
// be understood. The last '@' ends the user information; the first ':' in it ends the user.
func cutUserinfo(raw string) (rest, user, pass string) {
	scheme, after, ok := strings.Cut(raw, "://")
	if !ok {
		return raw, "", ""
	}
	at := strings.LastIndex(after, "@")
	if at < 0 {
		return raw, "", ""
	}
	userinfo, host := after[:at], after[at+1:]
	user, pass, _ = strings.Cut(userinfo, ":")
	// A URL that was written properly percent-encodes: undo that, but keep text that was not.
	if u, err := url.PathUnescape(user); err == nil {
		user = u
	}
	if p, err := url.PathUnescape(pass); err == nil {
		pass = p
	}
	return scheme + "://" + host, user, pass
}

// checkText bounds a free-text field and keeps control characters out of it.
func checkText(field, v string, maxLen int) error {
	if len(v) > maxLen {
		return &BadRequestError{Field: field, Code: CodeTooLong, Reason: fmt.Sprintf("is longer than %d bytes", maxLen)}
	}
	if !utf8.ValidString(v) {
		return &BadRequestError{Field: field, Code: CodeBadText, Reason: "is not UTF-8 text"}
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return &BadRequestError{Field: field, Code: CodeBadText, Reason: "contains a control character"}
		}
	}
	return nil
}

func checkPassword(field, v string) error {
	if len(v) > maxPasswordLen {
		return &BadRequestError{
			Field:  field,
			Code:   CodeTooLong,
			Reason: fmt.Sprintf("is longer than %d bytes", maxPasswordLen),
		}
	}
	return nil
}

// cameraID takes the path's camera_id, which the backend gets as it is, so it is bounded.
func cameraID(r *http.Request) (string, error) {
	id := r.PathValue("camera_id")
	if id == "" || len(id) > maxIDLen {
		return "", &BadRequestError{Field: "camera_id", Code: CodeTooLong, Reason: "is empty or too long"}
	}
	return id, checkText("camera_id", id, maxIDLen)
}

// validateAdd checks and normalises an AddCamera.
func validateAdd(req *AddCamera) error {
	req.CameraID = strings.TrimSpace(req.CameraID)
	req.Name = strings.TrimSpace(req.Name)
	req.Username = strings.TrimSpace(req.Username)
	if (req.CameraID == "") == (strings.TrimSpace(req.URL) == "") {
		return &BadRequestError{Code: CodeCameraOrURL, Reason: "give either camera_id (a discovered camera) or url"}
	}
	if req.URL != "" {
		clean, user, pass, err := splitCredentials("url", req.URL, "rtsp", "rtsps", "http", "https", "onvif")
		if err != nil {
			return err
		}
		req.URL = clean
		if req.Username == "" {
			req.Username = user
		}
		if req.Password == "" {
			req.Password = pass
		}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"camera_id", req.CameraID, maxIDLen}, {"name", req.Name, maxNameLen}, {"username", req.Username, maxUserLen}} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	return checkPassword("password", req.Password)
}

func (s *Server) addCamera(w http.ResponseWriter, r *http.Request) {
	var req AddCamera
	if !decodeJSON(w, r, &req) {
		return
	}
	secret := req.Password
	if err := validateAdd(&req); err != nil {
		writeInvalid(w, err, secret, req.Password)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	cam, err := s.cfg.Backend.AddCamera(ctx, req)
	if err != nil {
		s.backendError(w, r, err, secret, req.Password)
		return
	}
	writeJSON(w, http.StatusCreated, scrubCamera(cam))
}

// patchURL checks a PATCH's new camera URL and moves credentials in it into the patch's
// Username and Password, unless those were given separately.
func patchURL(p *CameraPatch) error {
	var user, pass string
	if p.Username != nil {
		user = *p.Username
	}
	if p.Password != nil {
		pass = *p.Password
	}
	raw := *p.URL
	if _, err := moveCredentials("url", &raw, &user, &pass, "rtsp", "rtsps", "http", "https"); err != nil {
		return err
	}
	if raw == "" {
		return &BadRequestError{Field: "url", Code: CodeRequired, Reason: "must not be empty"}
	}
	p.URL = &raw
	if user != "" {
		p.Username = &user
	}
	if pass != "" {
		p.Password = &pass
	}
	return nil
}

func validatePatch(p *CameraPatch) error {
	if p.Name == nil && p.Enabled == nil && p.Audio == nil && p.Substream == nil && p.Username == nil &&
		p.Password == nil && p.URL == nil && p.StreamName == nil {
		return &BadRequestError{Code: CodeNothingToChange, Reason: "nothing to change"}
	}
	if p.URL != nil {
		if err := patchURL(p); err != nil {
			return err
		}
	}
	if p.Name != nil {
		n := strings.TrimSpace(*p.Name)
		if n == "" {
			return &BadRequestError{Field: "name", Code: CodeRequired, Reason: "must not be empty"}
		}
		if err := checkText("name", n, maxNameLen); err != nil {
			return err
		}
		p.Name = &n
	}
	if p.Username != nil {
		u := strings.TrimSpace(*p.Username)
		if err := checkText("username", u, maxUserLen); err != nil {
			return err
		}
		p.Username = &u
	}
	if p.Password != nil {
		if *p.Password == "" {
			p.Password = nil // empty keeps the stored one
		} else if err := checkPassword("password", *p.Password); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) updateCamera(w http.ResponseWriter, r *http.Request) {
	id, err := cameraID(r)
	if err != nil {
		writeInvalid(w, err)
		return
	}
	var p CameraPatch
	if !decodeJSON(w, r, &p) {
		return
	}
	var secret string
	if p.Password != nil {
		secret = *p.Password
	}
	if err := validatePatch(&p); err != nil {
		writeInvalid(w, err, secret)
		return
	}
	if p.Password != nil {
		secret = *p.Password // also one that came in the URL
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	cam, err := s.cfg.Backend.UpdateCamera(ctx, id, p)
	if err != nil {
		s.backendError(w, r, err, secret)
		return
	}
	writeJSON(w, http.StatusOK, scrubCamera(cam))
}

func (s *Server) removeCamera(w http.ResponseWriter, r *http.Request) {
	id, err := cameraID(r)
	if err != nil {
		writeInvalid(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	if err := s.cfg.Backend.RemoveCamera(ctx, id); err != nil {
		s.backendError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	id, err := cameraID(r)
	if err != nil {
		writeInvalid(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	jpeg, err := s.cfg.Backend.Snapshot(ctx, id)
	if err != nil {
		s.backendError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(jpeg)))
	_, _ = w.Write(jpeg) // a client gone hears nothing
}

func (s *Server) discover(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	if err := s.cfg.Backend.Discover(ctx); err != nil {
		s.backendError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		Started bool `json:"started"`
	}{true})
}

// testStreamRequest is the body of POST /api/test-stream.
type testStreamRequest struct {
	URL      string `json:"url"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

func (s *Server) testStream(w http.ResponseWriter, r *http.Request) {
	var req testStreamRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	secret := req.Password
	clean, user, pass, err := splitCredentials("url", req.URL, "rtsp", "rtsps", "http", "https", "onvif")
	if err != nil {
		writeInvalid(w, err, secret)
		return
	}
	if req.Username = strings.TrimSpace(req.Username); req.Username == "" {
		req.Username = user
	}
	if req.Password == "" {
		req.Password = pass
	}
	if err := checkText("username", req.Username, maxUserLen); err != nil {
		writeInvalid(w, err)
		return
	}
	if err := checkPassword("password", req.Password); err != nil {
		writeInvalid(w, err)
		return
	}
	select {
	case s.tests <- struct{}{}:
		defer func() { <-s.tests }()
	default:
		w.Header().Set("Retry-After", "5")
		writeCoded(
			w,
			http.StatusTooManyRequests,
			CodeStreamTestsBusy,
			"other stream tests are running: try again in a few seconds",
		)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), testStreamTimeout)
	defer cancel()
	info, err := s.cfg.Backend.TestStream(ctx, clean, req.Username, req.Password)
	if err != nil {
		msg := redact(err.Error(), secret, req.Password)
		var bad *BadRequestError
		switch {
		case errors.As(err, &bad):
			writeInvalid(w, err, secret, req.Password)
		case errors.Is(err, ErrCameraUnauthorized):
			writeCoded(w, http.StatusUnprocessableEntity, CodeCameraUnauthorized, msg)
		default:
			// The camera, not the request, failed: 422 with the reason in words for the page.
			writeCoded(w, http.StatusUnprocessableEntity, CodeStreamFailed, msg)
		}
		return
	}
	if info.Tracks == nil {
		info.Tracks = []Track{}
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) connection(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	writeJSON(w, http.StatusOK, scrubConnection(s.cfg.Backend.Connection(ctx)))
}

func scrubConnection(c Connection) Connection {
	c.MQTT.URL = stripUserinfo(c.MQTT.URL)
	publish, _, hadPassword := cutPublishPassword(stripUserinfo(c.Flussonic.Publish))
	c.Flussonic.Publish = publish
	c.Flussonic.PasswordSet = c.Flussonic.PasswordSet || hadPassword
	events := make([]EventSink, len(c.Flussonic.Events))
	for i, e := range c.Flussonic.Events {
		events[i] = EventSink{URL: stripPassword(e.URL), Format: e.Format}
	}
	c.Flussonic.Events = events
	return c
}

// publishPasswordParam is the query parameter Flussonic checks a stream's publish password
// against (SPEC §2, §4: rtsp://host/{stream_name}?password=…). It is a secret like any password:
// it never leaves in a reply, and a publish URL sent without it keeps the stored one.
const publishPasswordParam = "password"

// cutPublishPassword removes the password parameter from a URL's query, leaving the rest of
// the query as it was written. It returns the parameter as it stood ("password=…", still
// escaped) and whether there was one.
func cutPublishPassword(raw string) (clean, param string, found bool) {
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw, "", false
	}
	var kept []string
	for _, p := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil && name == publishPasswordParam {
			param, found = p, true
			continue
		}
		kept = append(kept, p)
	}
	if !found {
		return raw, "", false
	}
	if len(kept) > 0 {
		base += "?" + strings.Join(kept, "&")
	}
	return base, param, true
}

// queryValue is the unescaped value of a "name=value" query parameter, for redaction.
func queryValue(param string) string {
	_, v, _ := strings.Cut(param, "=")
	if u, err := url.QueryUnescape(v); err == nil {
		return u
	}
	return v
}

// keepPublishPassword puts the stored publish password back on a publish URL the page sent
// without one (GET showed it without, so a save would otherwise drop it), unless the request
// clears the password. It returns the password, for redaction.
func keepPublishPassword(f *FlussonicUpdate, stored string) string {
	if f.Publish == "" {
		return ""
	}
	if _, param, found := cutPublishPassword(f.Publish); found {
		return queryValue(param)
	}
	if f.ClearPassword || !endpoint.SecretMayStay(stored, f.Publish) {
		return "" // a publish password stays with its host (issue 13)
	}
	_, param, found := cutPublishPassword(stored)
	if !found {
		return ""
	}
	sep := "?"
	if strings.Contains(f.Publish, "?") {
		sep = "&"
	}
	f.Publish += sep + param
	return queryValue(param)
}

// withPublishPassword puts password on a publish URL where Flussonic reads a stream's publish
// password: the password query parameter (its "Authorization for stream publishing"; the
// stream's password in the API schema), never user:password@. A password already in the query
// is replaced; the rest of the query stays as written.
func withPublishPassword(raw, password string) string {
	clean, _, _ := cutPublishPassword(raw)
	sep := "?"
	if strings.Contains(clean, "?") {
		sep = "&"
	}
	return clean + sep + publishPasswordParam + "=" + url.QueryEscape(password)
}

// moveCredentials takes user:password@ out of the URL in *raw into *user and *pass, unless the
// request gave those separately, and returns the password it found (for redaction).
func moveCredentials(field string, raw, user, pass *string, schemes ...string) (string, error) {
	if *raw = strings.TrimSpace(*raw); *raw == "" {
		return "", nil
	}
	clean, u, p, err := splitCredentials(field, *raw, schemes...)
	if err != nil {
		return "", err
	}
	*raw = clean
	if *user == "" {
		*user = u
	}
	if *pass == "" {
		*pass = p
	}
	return p, nil
}

// validateConnection checks and normalises an update; it returns the secrets it saw, for
// redaction.
func validateConnection(c *ConnectionUpdate) (secrets []string, err error) {
	if c.MQTT == nil && c.Flussonic == nil {
		return nil, &BadRequestError{Code: CodeNothingToChange, Reason: "nothing to change: give mqtt or flussonic"}
	}
	if m := c.MQTT; m != nil {
		secrets = append(secrets, m.Password)
		pass, err := moveCredentials("mqtt.url", &m.URL, &m.Username, &m.Password, "mqtt", "mqtts", "ws", "wss")
		secrets = append(secrets, pass)
		if err != nil {
			return secrets, err
		}
		m.Username = strings.TrimSpace(m.Username)
		m.TopicPrefix = strings.TrimSpace(m.TopicPrefix)
		if err := checkText("mqtt.username", m.Username, maxUserLen); err != nil {
			return secrets, err
		}
		if err := checkText("mqtt.topic_prefix", m.TopicPrefix, maxNameLen); err != nil {
			return secrets, err
		}
		if strings.ContainsAny(m.TopicPrefix, "#+") {
			return secrets, &BadRequestError{
				Field:  "mqtt.topic_prefix",
				Code:   CodeTopicWildcard,
				Reason: "must not contain the wildcards # or +",
			}
		}
		if err := checkPassword("mqtt.password", m.Password); err != nil {
			return secrets, err
		}
	}
	if f := c.Flussonic; f != nil {
		secrets = append(secrets, f.Password)
		if _, param, found := cutPublishPassword(f.Publish); found {
			secrets = append(secrets, queryValue(param))
		}
		userField := "flussonic.username"
		if f.Username == "" {
			userField = "flussonic.publish" // a user, if any, can only come from the URL
		}
		pass, err := moveCredentials(
			"flussonic.publish",
			&f.Publish,
			&f.Username,
			&f.Password,
			"rtsp",
			"rtsps",
			"rtmp",
			"rtmps",
		)
		secrets = append(secrets, pass)
		if err != nil {
			return secrets, err
		}
		f.StreamName = strings.TrimSpace(f.StreamName)
		if f.Username = strings.TrimSpace(f.Username); f.Username != "" {
			return secrets, &BadRequestError{Field: userField, Code: CodePublishUser,
				Reason: "Flussonic checks a stream's publish password only (as ?password=…), it takes no user name"}
		}
		if err := checkText("flussonic.stream_name", f.StreamName, maxNameLen); err != nil {
			return secrets, err
		}
		if err := checkPassword("flussonic.password", f.Password); err != nil {
			return secrets, err
		}
		if f.Publish != "" && f.Password != "" {
			f.Publish = withPublishPassword(f.Publish, f.Password)
			f.Password = ""
		}
		if f.Events != nil {
			if len(*f.Events) > maxEventSinks {
				return secrets, &BadRequestError{
					Field:  "flussonic.events",
					Code:   CodeTooManySinks,
					Reason: fmt.Sprintf("at most %d sinks", maxEventSinks),
				}
			}
			for i := range *f.Events {
				e := &(*f.Events)[i]
				field := fmt.Sprintf("flussonic.events[%d]", i)
				e.URL = strings.TrimSpace(e.URL)
				u, err := url.Parse(e.URL)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(e.URL) > maxURLLen {
					return secrets, &BadRequestError{Field: field + ".url", Code: CodeBadURL, Reason: "must be an http or https URL"}
				}
				if u.User != nil {
					p, _ := u.User.Password()
					secrets = append(secrets, p)
				}
				switch e.Format {
				case "":
					e.Format = "event_sink"
				case "event_sink", "episodes":
				default:
					return secrets, &BadRequestError{
						Field:  field + ".format",
						Code:   CodeBadValue,
						Reason: "must be event_sink or episodes",
					}
				}
			}
		}
	}
	return secrets, nil
}

func (s *Server) setConnection(w http.ResponseWriter, r *http.Request) {
	var c ConnectionUpdate
	if !decodeJSON(w, r, &c) {
		return
	}
	secrets, err := validateConnection(&c)
	if err != nil {
		writeInvalid(w, err, secrets...)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	if c.Flussonic != nil {
		stored := s.cfg.Backend.Connection(ctx).Flussonic.Publish
		secrets = append(secrets, keepPublishPassword(c.Flussonic, stored))
	}
	var notices []string
	if n, ok := s.cfg.Backend.(ConnectionNoticer); ok {
		notices, err = n.SetConnectionNoticed(ctx, c)
	} else {
		err = s.cfg.Backend.SetConnection(ctx, c)
	}
	if err != nil {
		s.backendError(w, r, err, secrets...)
		return
	}
	reply := scrubConnection(s.cfg.Backend.Connection(ctx))
	reply.Notices = notices
	writeJSON(w, http.StatusOK, reply)
}

func (s *Server) wifiQR(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n := WiFiNetwork{
		SSID:     q.Get("ssid"),
		Password: q.Get("password"),
		Security: q.Get("type"),
		Hidden:   q.Get("hidden") == "true" || q.Get("hidden") == "1",
	}
	if n.Security == "" {
		n.Security = "WPA"
		if n.Password == "" {
			n.Security = "nopass"
		}
	}
	png, err := n.PNG(qrSize)
	if err != nil {
		var bad *BadRequestError
		if errors.As(err, &bad) {
			writeInvalid(w, err)
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store") // it holds the Wi-Fi password
	_, _ = w.Write(png)                         // a client gone hears nothing
}

// metrics serves Prometheus text without a login: scrapers cannot log in, the listener admits
// only the LAN, and nothing in it is secret.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Metrics != nil {
		s.cfg.Metrics(w)
	}
	fmt.Fprintf(w, "camgate_web_denied_connections_total %d\n", s.DeniedConnections())
	fmt.Fprintf(w, "camgate_web_login_failures_total %d\n", s.loginFailed.Load())
	fmt.Fprintf(w, "camgate_web_login_refused_total %d\n", s.loginRefused.Load())
	fmt.Fprintf(w, "camgate_web_sessions %d\n", s.sessions.count())
}
