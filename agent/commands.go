package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CameraRequest adds or changes a camera from the pairing page or an MQTT command. Pointer
// fields left nil keep the current value (or the default when adding).
type CameraRequest struct {
	CameraID  string  `json:"camera_id,omitempty"`
	URL       *string `json:"url,omitempty"`
	Username  *string `json:"username,omitempty"`
	Password  *string `json:"password,omitempty"`
	Name      *string `json:"name,omitempty"`
	Audio     *bool   `json:"audio,omitempty"`
	Enabled   *bool   `json:"enabled,omitempty"`
	Substream *bool   `json:"substream,omitempty"`
	Transport *string `json:"transport,omitempty"`
	Auth      *string `json:"auth,omitempty"`
	// StreamName is the camera's own stream name; "" goes back to flussonic.stream_name.
	StreamName *string `json:"stream_name,omitempty"`
}

func (r CameraRequest) apply(c *CameraConfig) {
	r = r.withURLCredentials()
	defer takeURLCredentials(c) // a URL kept from before (a discovered xaddr, an older record)
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = strings.TrimSpace(*src)
		}
	}
	set(&c.URL, r.URL)
	set(&c.Username, r.Username)
	set(&c.Name, r.Name)
	set(&c.Transport, r.Transport)
	set(&c.Auth, r.Auth)
	set(&c.StreamName, r.StreamName)
	if r.Password != nil {
		c.Password = *r.Password // passwords may begin or end with spaces
	}
	for dst, src := range map[*bool]*bool{&c.Audio: r.Audio, &c.Enabled: r.Enabled, &c.Substream: r.Substream} {
		if src != nil {
			*dst = *src
		}
	}
}

// ErrUnknownCamera is returned for a camera_id the registry does not hold.
var ErrUnknownCamera = errors.New("no such camera")

// RequestError is a request's setting that is wrong, named without the "config:" prefix of
// the file's errors.
type RequestError struct {
	Field, Reason string
	err           error // the cause, when there is one to match (errors.Is)
}

func (e *RequestError) Unwrap() error { return e.err }

func (e *RequestError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func requestError(err error) error {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return &RequestError{Field: ce.Key, Reason: ce.Reason}
	}
	return err
}

// AddCamera adds a camera at run time; it is kept in the store and relayed at once when enabled.
func (a *Agent) AddCamera(ctx context.Context, r CameraRequest) (CameraStatus, error) {
	res, err := a.ask(ctx, addCameraRequest{req: r})
	return res.status, err
}

// SetCamera changes a camera added at run time. Cameras from the config file are changed by
// editing the file, which stays their single source of truth.
func (a *Agent) SetCamera(ctx context.Context, id string, r CameraRequest) (CameraStatus, error) {
	st, _, err := a.setCamera(ctx, id, r)
	return st, err
}

// setCamera is SetCamera with the reply's notice (NoticePasswordCleared, or "").
func (a *Agent) setCamera(ctx context.Context, id string, r CameraRequest) (CameraStatus, string, error) {
	res, err := a.ask(ctx, setCameraRequest{id: id, req: r})
	return res.status, res.notice, err
}

// RemoveCamera forgets a camera added at run time: its relay stops and its retained MQTT topics
// are cleared.
func (a *Agent) RemoveCamera(ctx context.Context, id string) error {
	_, err := a.ask(ctx, removeCameraRequest{id: id})
	return err
}

// RebootRelay restarts one camera's relay: both sessions are torn down and set up again. It
// returns once the restart is asked for; the new session starts when the old one has ended.
func (a *Agent) RebootRelay(ctx context.Context, id string) error {
	_, err := a.ask(ctx, rebootRelayRequest{id: id})
	return err
}

type addCameraRequest struct{ req CameraRequest }

func (q addCameraRequest) serve(r *registry) result {
	req := q.req
	c := defaultCamera()
	c.ID = strings.TrimSpace(req.CameraID)
	dev := DeviceInfo{}
	// A discovered camera is added by its camera_id and credentials: its ONVIF address is known.
	if d, ok := r.discoveredByID(c.ID); ok && req.URL == nil {
		c.URL, c.Name = d.XAddr, d.Name
		dev = DeviceInfo{Model: d.Hardware, IP: d.IP, MAC: d.MAC, ONVIF: onvifOnly(d.XAddr)}
	}
	req.apply(&c)
	if c.ID == "" && c.URL != "" {
		c.ID = CameraIDFromURL(c.URL)
	}
	if dev.IP == "" {
		dev.IP = hostOf(c.URL)
	}
	if e, exists := r.cameras[c.ID]; exists && e.origin != originDiscovered {
		return result{err: fmt.Errorf("%w: %s (use set_camera to change it)", ErrCameraExists, c.ID)}
	}
	if err := checkCamera("", c); err != nil {
		return result{err: requestError(err)}
	}
	// Also a discovered camera's address: it came from an unauthenticated announcement.
	if err := r.a.checkCameraURL(c.URL); err != nil {
		return result{err: err}
	}
	rec := cameraRecord{CameraConfig: c, Device: dev, AddedAt: time.Now().UTC()}
	if err := r.a.saveCamera(rec); err != nil {
		return result{err: fmt.Errorf("saving camera: %w", err)}
	}
	r.added[c.ID] = rec
	r.reconcile()
	return r.statusOf(c.ID)
}

type setCameraRequest struct {
	id  string
	req CameraRequest
}

func (q setCameraRequest) serve(r *registry) result {
	rec, err := r.addedCamera(q.id)
	if err != nil {
		return result{err: err}
	}
	oldURL := rec.URL
	q.req.apply(&rec.CameraConfig)
	if err := checkCamera("", rec.CameraConfig); err != nil {
		return result{err: requestError(err)}
	}
	var notice string
	if q.req.URL != nil && rec.URL != oldURL {
		if err := r.a.checkCameraURL(rec.URL); err != nil {
			return result{err: err}
		}
		_, _, inURL := splitUserinfo(*q.req.URL) // apply moved it out of rec.URL
		notice = keepSecretWithHost(&rec.CameraConfig, oldURL, q.req.Password != nil || inURL)
		rec.Device.IP = hostOf(rec.URL)
	}
	if err := r.a.saveCamera(rec); err != nil {
		return result{err: fmt.Errorf("saving camera: %w", err)}
	}
	r.added[q.id] = rec
	if q.req.URL != nil { // the owner said where the camera is: that answers a "moved?"
		r.confirmMove(q.id, rec.URL)
	}
	if notice != "" {
		r.a.log.Warn("camera moved to another host without its password: password cleared", "camera_id", q.id,
			"url", redactURL(rec.URL))
	}
	r.reconcile()
	res := r.statusOf(q.id)
	res.notice = notice
	return res
}

// NoticePasswordCleared is what a reply says when a change of host dropped a stored secret.
const NoticePasswordCleared = "password cleared: host changed"

// keepSecretWithHost clears c's password when its URL now names another host than oldURL and
// the request did not give the password again (issue 13: a secret stays with its host), and
// returns the notice for the reply.
func keepSecretWithHost(c *CameraConfig, oldURL string, passwordGiven bool) string {
	if passwordGiven || c.Password == "" || sameHost(oldURL, c.URL) {
		return ""
	}
	c.Password = ""
	return NoticePasswordCleared
}

type removeCameraRequest struct{ id string }

func (q removeCameraRequest) serve(r *registry) result {
	if _, err := r.addedCamera(q.id); err != nil {
		return result{err: err}
	}
	if err := r.a.db.Cameras().Delete(q.id); err != nil {
		return result{err: fmt.Errorf("removing camera: %w", err)}
	}
	delete(r.added, q.id)
	r.reconcile()
	return result{}
}

type rebootRelayRequest struct{ id string }

func (q rebootRelayRequest) serve(r *registry) result {
	e, ok := r.cameras[q.id]
	if !ok {
		return result{err: fmt.Errorf("%w: %s", ErrUnknownCamera, q.id)}
	}
	if e.relay == nil {
		why := e.problem
		if why == "" {
			why = "not running"
		}
		return result{err: fmt.Errorf("camera %s is not relayed: %s", q.id, why)}
	}
	r.stopRelay(e)
	e.problem = "restarting"
	r.a.log.Info("relay restart requested", "camera_id", q.id)
	return result{}
}

// addedCamera is the stored record of a camera added at run time.
func (r *registry) addedCamera(id string) (cameraRecord, error) {
	e, ok := r.cameras[id]
	if !ok {
		return cameraRecord{}, fmt.Errorf("%w: %s", ErrUnknownCamera, id)
	}
	switch e.origin {
	case originConfig:
		return cameraRecord{}, fmt.Errorf("camera %s is defined in the config file: change it there", id)
	case originDiscovered:
		return cameraRecord{},
			fmt.Errorf("camera %s was discovered but not added: add it with add_camera and its credentials", id)
	}
	rec, ok := r.added[id]
	if !ok {
		return cameraRecord{}, fmt.Errorf("camera %s: not in the store", id)
	}
	return rec, nil
}

// statusOf answers a request with a camera's status as the next view will show it.
func (r *registry) statusOf(id string) result {
	r.publish()
	s, err := r.a.cameraStatus(id)
	return result{status: s, err: err}
}

// Commands are the MQTT commands of SPEC §6 that this build serves.
var knownCommands = []string{"add_camera", "remove_camera", "set_camera", "reboot_relay", "discover", "snapshot", "ptz",
	"start_relay", "stop_relay"}

// decodeCommand decodes a command payload, refusing fields the command does not know, so that a
// misspelt field is an error rather than silently ignored.
func decodeCommand(payload json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// HandleCommand serves P/cmd/<name> (SPEC §6). The uplink has already checked the JSON, the id
// and the size.
func (a *Agent) HandleCommand(ctx context.Context, name string, payload json.RawMessage) (map[string]any, error) {
	var req struct {
		ID string `json:"id"`
		CameraRequest
	}
	var ptz struct {
		ID       string `json:"id"`
		CameraID string `json:"camera_id"`
		PTZRequest
	}
	var window struct {
		ID       string `json:"id"`
		CameraID string `json:"camera_id"`
		Seconds  int    `json:"seconds"`
	}
	if !slices.Contains(knownCommands, name) {
		return nil, fmt.Errorf("unknown command %q (known: %s)", name, strings.Join(knownCommands, ", "))
	}
	var err error
	switch name {
	case "ptz":
		err = decodeCommand(payload, &ptz)
		req.CameraID = ptz.CameraID
	case "start_relay", "stop_relay":
		err = decodeCommand(payload, &window)
		req.CameraID = window.CameraID
	default:
		err = decodeCommand(payload, &req)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	needID := func() error {
		if req.CameraID == "" {
			return fmt.Errorf("%s: camera_id is required", name)
		}
		return nil
	}
	switch name {
	case "add_camera":
		c, err := a.AddCamera(ctx, req.CameraRequest)
		if err != nil {
			return commandErrorFields(err), err
		}
		return map[string]any{"camera_id": c.ID, "agent_id": c.AgentID, "stream_name": c.StreamName}, nil
	case "discover":
		found, err := a.DiscoverNow(ctx, 3*time.Second)
		if err != nil {
			return nil, fmt.Errorf("discover: %w", err)
		}
		devices := make([]map[string]any, 0, len(found))
		for _, f := range found {
			devices = append(devices, map[string]any{"xaddr": f.XAddr, "name": f.Name, "hardware": f.Hardware,
				"ip": f.Addr.String()})
		}
		return map[string]any{"found": len(found), "devices": devices}, nil
	}
	if err := needID(); err != nil {
		return nil, err
	}
	switch name {
	case "set_camera":
		c, notice, err := a.setCamera(ctx, req.CameraID, req.CameraRequest)
		if err != nil {
			return nil, err
		}
		reply := map[string]any{"camera_id": c.ID, "agent_id": c.AgentID}
		if notice != "" {
			reply["notice"], reply["password_cleared"] = notice, true
		}
		return reply, nil
	case "remove_camera":
		return map[string]any{"camera_id": req.CameraID}, a.RemoveCamera(ctx, req.CameraID)
	case "reboot_relay":
		return map[string]any{"camera_id": req.CameraID}, a.RebootRelay(ctx, req.CameraID)
	case "snapshot":
		b, err := a.TakeSnapshot(ctx, req.CameraID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"camera_id": req.CameraID, "bytes": len(b)}, nil
	case "ptz":
		return map[string]any{"camera_id": req.CameraID}, a.PTZ(ctx, req.CameraID, ptz.PTZRequest)
	case "start_relay":
		return a.StartRelay(ctx, req.CameraID, time.Duration(window.Seconds)*time.Second)
	case "stop_relay":
		return a.StopRelay(ctx, req.CameraID)
	}
	return nil, fmt.Errorf("unknown command %q (known: %s)", name, strings.Join(knownCommands, ", "))
}
