package web

import (
	"context"
	"errors"
)

// Backend is what the page needs from the agent. The agent implements it; this package never
// reaches into the protocol packages itself.
//
// Methods get the request's context: they should return when it ends. Errors that the user
// caused should wrap ErrNotFound (HTTP 404) or ErrExists (HTTP 409), or be a *BadRequestError
// (HTTP 400); an error that means the camera refused its credentials should wrap
// ErrCameraUnauthorized (HTTP 422, code camera_unauthorized); any other error is shown to the
// user as it is (HTTP 422 for TestStream, 500 otherwise), so it must not contain a secret.
type Backend interface {
	Status(ctx context.Context) GatewayStatus
	// Cameras returns discovered and added cameras.
	Cameras(ctx context.Context) []Camera
	// AddCamera adds a discovered camera (CameraID set) or one given by URL.
	AddCamera(ctx context.Context, req AddCamera) (Camera, error)
	UpdateCamera(ctx context.Context, id string, p CameraPatch) (Camera, error)
	RemoveCamera(ctx context.Context, id string) error
	// Snapshot returns the camera's latest JPEG, or an error wrapping ErrNotFound when there is
	// none.
	Snapshot(ctx context.Context, id string) ([]byte, error)
	// Discover starts a scan now; its results show up in Cameras.
	Discover(ctx context.Context) error
	// TestStream connects to url as `camgate probe` does. Its error is shown to the user.
	TestStream(ctx context.Context, url, username, password string) (StreamInfo, error)
	// Connection returns the SC (MQTT) and Flussonic settings with secrets blanked.
	Connection(ctx context.Context) Connection
	// SetConnection stores new settings; an empty password keeps the stored one.
	SetConnection(ctx context.Context, c ConnectionUpdate) error
}

// ConnectionNoticer is a Backend whose connection change can say more than ok: a stored
// secret dropped because its URL moved to another host. The server calls it instead of
// SetConnection when the Backend has it, and returns the notices in the reply's "notices".
type ConnectionNoticer interface {
	SetConnectionNoticed(ctx context.Context, c ConnectionUpdate) (notices []string, err error)
}

// ErrNotFound is wrapped by Backend errors about a camera or snapshot that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is wrapped by Backend errors about adding a camera that is already added, so the
// page answers 409 Conflict (code camera_exists) rather than a 500 that reads as our failure.
var ErrExists = errors.New("already exists")

// BadRequestError is a validation error shown to the user as a 400.
type BadRequestError struct {
	Field  string    // the request field at fault, in its JSON spelling; may be empty
	Code   ErrorCode // what is wrong, for the page; "" = CodeBadRequest
	Reason string
}

func (e *BadRequestError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// LinkState is the state of one uplink connection.
type LinkState string

const (
	LinkUp           LinkState = "up"
	LinkConnecting   LinkState = "connecting"
	LinkDown         LinkState = "down"
	LinkUnconfigured LinkState = "unconfigured"
)

// Link is an uplink connection as the page shows it.
type Link struct {
	State     LinkState `json:"state"`
	LastError string    `json:"last_error,omitempty"`
}

// GatewayStatus is the gateway's state for GET /api/status.
type GatewayStatus struct {
	GatewayID     string `json:"gateway_id"`
	Version       string `json:"version"` // filled from Config.Version when empty
	UptimeSeconds int64  `json:"uptime_s"`
	MQTT          Link   `json:"mqtt"`
	// Flussonic is the publish side: up while at least one relay publishes, down when every
	// enabled relay fails to publish.
	Flussonic   Link   `json:"flussonic"`
	Cameras     int    `json:"cameras"`  // added cameras
	Relaying    int    `json:"relaying"` // cameras whose relay is publishing now
	OutboxDepth int    `json:"outbox_depth"`
	OutboxBytes int64  `json:"outbox_bytes"`
	OutboxDrops uint64 `json:"outbox_drops"` // messages dropped because the queue was full, ever
	// SMTP is the login cameras use for alarm mail; nil while the SMTP server is off.
	SMTP *SMTPLogin `json:"smtp,omitempty"`
}

// SMTPLogin is what cameras log in to the SMTP alarm server with. The password is shown only
// when the gateway generated it (the owner must copy it into the cameras); one the owner set in
// the config stays write-only like every other secret.
type SMTPLogin struct {
	Username  string `json:"username"`
	Password  string `json:"password,omitempty"`
	Generated bool   `json:"generated"`
}

// CameraState says whether a camera was only discovered or has been added.
type CameraState string

const (
	CameraDiscovered CameraState = "discovered"
	CameraAdded      CameraState = "added"
)

// Camera is one discovered or added camera. It never carries a password; the server also
// strips any user information from URL and ONVIF before sending it.
type Camera struct {
	CameraID   string `json:"camera_id"`
	AgentID    string `json:"agent_id,omitempty"` // 10 digits; empty until added
	Name       string `json:"name"`
	Vendor     string `json:"vendor,omitempty"`
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	MAC        string `json:"mac,omitempty"`
	IP         string `json:"ip,omitempty"`
	URL        string `json:"url,omitempty"`   // rtsp:// or the ONVIF device service
	ONVIF      string `json:"onvif,omitempty"` // ONVIF device service address, if any
	StreamName string `json:"stream_name,omitempty"`
	// PlayURL is flussonic.play + the stream name: with Name, what SC's "add camera by
	// parameters" form takes (SPEC §8).
	PlayURL          string      `json:"play_url,omitempty"`
	State            CameraState `json:"state"`
	Enabled          bool        `json:"enabled"`
	Audio            bool        `json:"audio"`
	Relaying         bool        `json:"relaying"`
	Online           bool        `json:"online"`
	Codec            string      `json:"codec,omitempty"`
	Width            int         `json:"width,omitempty"`
	Height           int         `json:"height,omitempty"`
	FPS              float64     `json:"fps,omitempty"`
	BitrateBPS       int64       `json:"bitrate_bps"`
	Quality          string      `json:"quality,omitempty"` // main, or sub while the uplink is short
	UplinkBPS        int64       `json:"uplink_bps"`
	LastError        string      `json:"last_error,omitempty"`
	HasSnapshot      bool        `json:"has_snapshot"`
	NeedsCredentials bool        `json:"needs_credentials"`
	Username         string      `json:"username,omitempty"`
	// MovedTo is set when a device claiming to be this camera announced a new address that was
	// not followed: the owner confirms it by changing the camera's URL (and giving the password
	// again). The camera keeps relaying from its old address meanwhile.
	MovedTo string `json:"moved_to,omitempty"`
	// PasswordCleared and Notice, in the answer to a PATCH, say that the change of host
	// dropped the stored password ("password cleared: host changed").
	PasswordCleared bool   `json:"password_cleared,omitempty"`
	Notice          string `json:"notice,omitempty"`
}

// AddCamera is the body of POST /api/cameras: either CameraID of a discovered camera, or URL
// (rtsp://, rtsps:// or an ONVIF device service http(s)://). Credentials embedded in URL are
// moved into Username and Password by the server before the Backend sees them.
type AddCamera struct {
	CameraID  string `json:"camera_id,omitempty"`
	URL       string `json:"url,omitempty"`
	Name      string `json:"name,omitempty"`
	Username  string `json:"username,omitempty"`
	Password  string `json:"password,omitempty"`
	Audio     *bool  `json:"audio,omitempty"`     // nil: the default (on)
	Substream *bool  `json:"substream,omitempty"` // nil: the default (main stream)
}

// CameraPatch is the body of PATCH /api/cameras/{camera_id}. Nil fields keep their value; an
// empty Password keeps the stored one.
type CameraPatch struct {
	Name      *string `json:"name,omitempty"`
	Enabled   *bool   `json:"enabled,omitempty"`
	Audio     *bool   `json:"audio,omitempty"`
	Substream *bool   `json:"substream,omitempty"`
	Username  *string `json:"username,omitempty"`
	Password  *string `json:"password,omitempty"`
	// StreamName is the camera's own stream name at Flussonic; "" goes back to the default.
	StreamName *string `json:"stream_name,omitempty"`
	// URL moves the camera (rtsp://, rtsps:// or an ONVIF device service). A URL on another
	// host without Password clears the stored password: it is never sent to the new host.
	URL *string `json:"url,omitempty"`
}

// Track is one media track found by TestStream.
type Track struct {
	Kind       string  `json:"kind"` // video | audio | other
	Codec      string  `json:"codec"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
}

// StreamInfo is what TestStream found.
type StreamInfo struct {
	Tracks     []Track `json:"tracks"`
	BitrateBPS int64   `json:"bitrate_bps"`
}

// EventSink is one Flussonic event_sink. Any password in URL is removed before it is sent to
// the page, so a sink URL coming back in an update with a user but no password means "keep the
// password stored for this sink".
type EventSink struct {
	URL    string `json:"url"`
	Format string `json:"format"` // event_sink (default) | episodes (SPEC §5)
}

// MQTTConnection is the SC broker setting as the page sees it.
type MQTTConnection struct {
	URL         string `json:"url"`
	Username    string `json:"username"`
	PasswordSet bool   `json:"password_set"`
	TopicPrefix string `json:"topic_prefix"`
}

// FlussonicConnection is the publish setting as the page sees it; Publish has no user
// information (it is in Username and PasswordSet).
type FlussonicConnection struct {
	Publish     string      `json:"publish"`
	Username    string      `json:"username"`
	PasswordSet bool        `json:"password_set"`
	StreamName  string      `json:"stream_name"`
	Events      []EventSink `json:"events"`
}

// Connection is the body of GET /api/connection.
type Connection struct {
	MQTT      MQTTConnection      `json:"mqtt"`
	Flussonic FlussonicConnection `json:"flussonic"`
	// Notices, in the answer to a PUT, e.g. "mqtt.password cleared: host changed".
	Notices []string `json:"notices,omitempty"`
}

// MQTTUpdate replaces the MQTT setting. An empty Password keeps the stored one unless
// ClearPassword is set.
type MQTTUpdate struct {
	URL           string `json:"url"`
	Username      string `json:"username"`
	Password      string `json:"password,omitempty"`
	ClearPassword bool   `json:"clear_password,omitempty"`
	TopicPrefix   string `json:"topic_prefix"`
}

// FlussonicUpdate replaces the Flussonic setting. Credentials in Publish are moved into
// Username and Password by the server. An empty Password keeps the stored one unless
// ClearPassword is set. A nil Events keeps the stored sinks; an empty list removes them.
type FlussonicUpdate struct {
	Publish       string       `json:"publish"`
	Username      string       `json:"username"`
	Password      string       `json:"password,omitempty"`
	ClearPassword bool         `json:"clear_password,omitempty"`
	StreamName    string       `json:"stream_name"`
	Events        *[]EventSink `json:"events,omitempty"`
}

// ConnectionUpdate is the body of PUT /api/connection; a nil section is left as it is.
type ConnectionUpdate struct {
	MQTT      *MQTTUpdate      `json:"mqtt,omitempty"`
	Flussonic *FlussonicUpdate `json:"flussonic,omitempty"`
}
