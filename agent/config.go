package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole of camgate.yaml (SPEC §2). Zero values are not meaningful: start from
// DefaultConfig and overlay a file with LoadConfig.
type Config struct {
	GatewayID string          `yaml:"gateway_id"`
	DataDir   string          `yaml:"data_dir"`
	Log       LogConfig       `yaml:"log"`
	Web       WebConfig       `yaml:"web"`
	Discovery DiscoveryConfig `yaml:"discovery"`
	Cameras   []CameraConfig  `yaml:"cameras"`
	Relay     RelayConfig     `yaml:"relay"`
	Flussonic FlussonicConfig `yaml:"flussonic"`
	MQTT      MQTTConfig      `yaml:"mqtt"`
	SMTP      SMTPConfig      `yaml:"smtp"`
	Motion    MotionConfig    `yaml:"motion"`
	Outbox    OutboxConfig    `yaml:"outbox"`
}

type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type WebConfig struct {
	Listen string   `yaml:"listen"` // "" disables the page
	Allow  []string `yaml:"allow"`
}

type DiscoveryConfig struct {
	ONVIF      bool     `yaml:"onvif"`
	MDNS       bool     `yaml:"mdns"`
	Interval   Duration `yaml:"interval"`
	Interfaces []string `yaml:"interfaces"`
}

type CameraConfig struct {
	ID        string `yaml:"id" json:"id"`
	Name      string `yaml:"name" json:"name"`
	URL       string `yaml:"url" json:"url"`
	Username  string `yaml:"username" json:"username"`
	Password  string `yaml:"password" json:"password"`
	Substream bool   `yaml:"substream" json:"substream"`
	Audio     bool   `yaml:"audio" json:"audio"`
	Enabled   bool   `yaml:"enabled" json:"enabled"`
	// StreamName is this camera's own stream name at Flussonic (Watcher names the streams it
	// creates itself); "" = flussonic.stream_name.
	StreamName string `yaml:"stream_name" json:"stream_name"`
	// Transport is auto (TCP, UDP on 461; "" in cameras stored before revision 2), tcp or udp.
	Transport string `yaml:"transport" json:"transport"`
	// Auth is "" (Digest / WS-Security digest only, Basic only over rtsps://) or basic: the
	// camera may get its password in cleartext Basic.
	Auth string `yaml:"auth" json:"auth"`
	// The keys below are parsed and checked, and refused with a non-default value until this
	// version implements them (SPEC §2 names them for pinned credentials and home uplinks).
	SubstreamURL string   `yaml:"substream_url" json:"substream_url"`
	Priority     int      `yaml:"priority" json:"priority"`
	Relay        string   `yaml:"relay" json:"relay"` // always ("" in cameras stored before revision 2)
	PreRoll      Duration `yaml:"pre_roll" json:"pre_roll"`
	PostRoll     Duration `yaml:"post_roll" json:"post_roll"`
}

// RelayConfig is the gateway-wide relay budget.
type RelayConfig struct {
	// CacheBytes is shared by the per-camera GOP caches (rtsp.CacheBudget): 0 turns them off.
	CacheBytes int64 `yaml:"cache_bytes"`
}

const (
	// DefaultCacheBytes is relay.cache_bytes' default (SPEC §2).
	DefaultCacheBytes = 8 << 20 // rtsp.DefaultCacheBudgetBytes
	// maxCacheBytes bounds relay.cache_bytes: more than the largest gateway's RAM could spare.
	maxCacheBytes = 256 << 20
)

type FlussonicConfig struct {
	// Publish is where each camera publishes, {stream_name} marking the name's place; without
	// it the name is appended to the path. "" = no relaying until it is set.
	Publish    string            `yaml:"publish"`
	Play       string            `yaml:"play"` // rtsp://host[:port]/ viewers play from; "" = publish host, port 554
	StreamName string            `yaml:"stream_name"`
	API        MediaAPIConfig    `yaml:"api"`
	Events     []EventSinkConfig `yaml:"events"`
}

// MediaAPIConfig is the optional Flussonic Media Server API camgate creates streams through.
// A username means Basic auth (Flussonic's edit_auth); a password without one is a Bearer token.
type MediaAPIConfig struct {
	URL      string `yaml:"url"` // http(s)://host/streamer/api/v3
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Event sink formats (SPEC §5).
const (
	FormatEventSink = "event_sink"
	FormatEpisodes  = "episodes"
)

type EventSinkConfig struct {
	URL    string `yaml:"url"`
	Format string `yaml:"format"` // event_sink (default) or episodes
	// Server is each event's "server", the streamer the streams live on; "" = the publish host.
	Server string `yaml:"server"`
	// Headers go on every request; a value may name environment variables as ${NAME}.
	Headers map[string]string `yaml:"headers"`
}

type MQTTConfig struct {
	URL               string   `yaml:"url"` // "" = no MQTT
	Username          string   `yaml:"username"`
	Password          string   `yaml:"password"`
	CAFile            string   `yaml:"ca_file"`
	CertFile          string   `yaml:"cert_file"`
	KeyFile           string   `yaml:"key_file"`
	TopicPrefix       string   `yaml:"topic_prefix"`
	TelemetryInterval Duration `yaml:"telemetry_interval"`
}

type SMTPConfig struct {
	Listen          string   `yaml:"listen"` // "" disables the alarm mail server
	Allow           []string `yaml:"allow"`
	Username        string   `yaml:"username"`
	Password        string   `yaml:"password"`
	MaxMessageBytes int64    `yaml:"max_message_bytes"`
}

type MotionConfig struct {
	Hold Duration `yaml:"hold"`
}

type OutboxConfig struct {
	MaxBytes int64 `yaml:"max_bytes"`
}

// Duration is a time.Duration written in YAML as "30s", "5m".
type Duration time.Duration

func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("must be a duration such as 30s or 5m")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("must be a duration such as 30s or 5m, not %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// DefaultDataDir is where the daemon keeps its database when the config does not say.
const DefaultDataDir = "/var/lib/camgate"

// DefaultConfig returns the built-in defaults. Nothing in them reaches outside the gateway:
// relaying, MQTT and event sinks stay off until the owner sets their addresses.
func DefaultConfig() Config {
	return Config{
		DataDir:   DefaultDataDir,
		Log:       LogConfig{Level: "info", Format: "text"},
		Web:       WebConfig{Listen: ":8080", Allow: []string{}},
		Discovery: DiscoveryConfig{ONVIF: true, MDNS: true, Interval: Duration(5 * time.Minute), Interfaces: []string{}},
		Cameras:   []CameraConfig{},
		Relay:     RelayConfig{CacheBytes: DefaultCacheBytes},
		Flussonic: FlussonicConfig{StreamName: "{gateway_id}-{camera_id}", Events: []EventSinkConfig{}},
		MQTT: MQTTConfig{
			TopicPrefix:       "camgate/{gateway_id}",
			TelemetryInterval: Duration(60 * time.Second),
		},
		SMTP:   SMTPConfig{Listen: ":1025", Allow: []string{}, MaxMessageBytes: 10 << 20},
		Motion: MotionConfig{Hold: Duration(30 * time.Second)},
		Outbox: OutboxConfig{MaxBytes: 64 << 20},
	}
}

func defaultCamera() CameraConfig {
	return CameraConfig{
		Audio: true, Enabled: true, Transport: "auto", Relay: "always",
		PreRoll: Duration(5 * time.Second), PostRoll: Duration(10 * time.Second),
	}
}

func defaultEventSink() EventSinkConfig {
	return EventSinkConfig{Format: FormatEventSink, Headers: map[string]string{}}
}

// removedKeys are keys earlier revisions had, with why they went: a file that still has one
// must not start as though it had been understood.
var removedKeys = map[string]string{
	"naming": "removed in config revision 2: Flussonic names motion events stream_motion_started and " +
		"stream_motion_stopped in every version (its published event schemas), so there is nothing to choose; delete the key",
}

// ConfigError names the key at fault, as in "config: flussonic.publish: scheme must be ...".
type ConfigError struct {
	Key    string
	Line   int
	Reason string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// ParseConfig reads YAML over the defaults and validates the result. Unknown keys and values of
// the wrong type are errors that name the key; nothing is silently ignored.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return cfg, &ConfigError{Reason: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			if root.Kind != yaml.ScalarNode || root.Tag != "!!null" {
				return cfg, &ConfigError{Line: root.Line,
					Reason: "the file must be a mapping of keys such as gateway_id, cameras, flussonic"}
			}
		} else if err := decodeStrict(root, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

var durationType = reflect.TypeOf(Duration(0))

// decodeStrict walks a YAML node against a Go value so that every error carries the key path.
func decodeStrict(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case v.Type() == durationType || v.Kind() != reflect.Struct && v.Kind() != reflect.Slice && v.Kind() != reflect.Map:
		if n.Kind != yaml.ScalarNode {
			return &ConfigError{Key: path, Line: n.Line, Reason: "must be a single value"}
		}
		if n.Tag == "!!null" {
			return nil // "key:" with nothing keeps the default
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			reason := err.Error()
			if v.Type() != durationType {
				reason = describeDecodeError(err, v.Kind(), n.Value)
			}
			return &ConfigError{Key: path, Line: n.Line, Reason: reason}
		}
		return nil
	case v.Kind() == reflect.Slice:
		if n.Tag == "!!null" {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return &ConfigError{Key: path, Line: n.Line, Reason: "must be a list"}
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			elem := out.Index(i)
			if elem.Type() == reflect.TypeOf(CameraConfig{}) {
				elem.Set(reflect.ValueOf(defaultCamera()))
			}
			if elem.Type() == reflect.TypeOf(EventSinkConfig{}) {
				elem.Set(reflect.ValueOf(defaultEventSink()))
			}
			if err := decodeStrict(item, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	case v.Kind() == reflect.Map:
		if n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return &ConfigError{Key: path, Line: n.Line, Reason: "must be a mapping of names to values"}
		}
		out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinKey(path, k.Value)
			if out.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				return &ConfigError{Key: key, Line: k.Line, Reason: "given twice"}
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := decodeStrict(val, elem, key); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
		v.Set(out)
		return nil
	default: // struct
		if n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return &ConfigError{Key: path, Line: n.Line, Reason: "must be a mapping of keys"}
		}
		fields := yamlFields(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinKey(path, k.Value)
			idx, ok := fields[k.Value]
			if why, removed := removedKeys[k.Value]; removed && !ok {
				return &ConfigError{Key: key, Line: k.Line, Reason: why}
			}
			if !ok {
				return &ConfigError{Key: key, Line: k.Line, Reason: "unknown key" + suggest(k.Value, fields)}
			}
			if seen[k.Value] {
				return &ConfigError{Key: key, Line: k.Line, Reason: "given twice"}
			}
			seen[k.Value] = true
			if err := decodeStrict(val, v.Field(idx), key); err != nil {
				return err
			}
		}
		return nil
	}
}

func describeDecodeError(err error, kind reflect.Kind, value string) string {
	switch kind {
	case reflect.Bool:
		return fmt.Sprintf("must be true or false, not %q", value)
	case reflect.Int, reflect.Int64, reflect.Int32:
		return fmt.Sprintf("must be a whole number, not %q", value)
	case reflect.String:
		return fmt.Sprintf("must be a string, not %q", value)
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "yaml:") {
		msg = msg[i+2:]
	}
	return msg
}

func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for f := range fields {
		if d := editDistance(key, f); d < bestDist {
			best, bestDist = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// ApplyEnv takes secrets from the environment so they need not sit in the file. A variable that
// is set wins over the file.
func (c *Config) ApplyEnv(getenv func(string) string) {
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.MQTT.Username, "CAMGATE_MQTT_USERNAME")
	set(&c.MQTT.Password, "CAMGATE_MQTT_PASSWORD")
	set(&c.SMTP.Username, "CAMGATE_SMTP_USERNAME")
	set(&c.SMTP.Password, "CAMGATE_SMTP_PASSWORD")
	set(&c.Flussonic.Publish, "CAMGATE_FLUSSONIC_PUBLISH")
	set(&c.GatewayID, "CAMGATE_GATEWAY_ID")
	for i := range c.Cameras {
		if c.Cameras[i].ID != "" {
			set(&c.Cameras[i].Password, "CAMGATE_CAMERA_"+envName(c.Cameras[i].ID)+"_PASSWORD")
		}
	}
}

func envName(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, id)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks every value and returns the first problem, naming its key. It also moves
// user:password@ out of camera URLs into their username and password (takeURLCredentials).
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	if c.GatewayID != "" && !idPattern.MatchString(c.GatewayID) {
		return bad("gateway_id", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return bad("data_dir", "must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "must be text or json, not %q", c.Log.Format)
	}
	if err := checkListen(c.Web.Listen); err != nil {
		return bad("web.listen", "%v", err)
	}
	if err := checkCIDRs(c.Web.Allow); err != nil {
		return bad("web.allow", "%v", err)
	}
	if c.Discovery.Interval.Std() < 10*time.Second {
		return bad("discovery.interval", "must be at least 10s, not %s", c.Discovery.Interval.Std())
	}
	ids := map[string]int{}
	for i := range c.Cameras {
		takeURLCredentials(&c.Cameras[i]) // no URL kept anywhere carries a secret (issue 13)
	}
	for i, cam := range c.Cameras {
		key := fmt.Sprintf("cameras[%d]", i)
		if cam.ID != "" {
			if j, dup := ids[cam.ID]; dup {
				return bad(key+".id", "%q is already the id of cameras[%d]", cam.ID, j)
			}
			ids[cam.ID] = i
		}
		if err := checkCamera(key, cam); err != nil {
			return err
		}
	}
	if b := c.Relay.CacheBytes; b != 0 && (b < 64<<10 || b > maxCacheBytes) {
		return bad("relay.cache_bytes", "%d: must be 0 (no GOP cache) or from %d to %d", b, 64<<10, maxCacheBytes)
	}
	if err := c.Flussonic.validate(); err != nil {
		return err
	}
	names := map[string]int{}
	for i, cam := range c.Cameras {
		if cam.ID == "" {
			continue // its id, and so its default name, is known only once it is resolved
		}
		name := c.CameraStreamName(cam.ID, cam.StreamName)
		if j, dup := names[name]; dup {
			return bad(fmt.Sprintf("cameras[%d].stream_name", i),
				"%q is already the stream of cameras[%d]: two cameras cannot publish to one stream", name, j)
		}
		names[name] = i
	}
	if c.MQTT.URL != "" {
		u, err := url.Parse(c.MQTT.URL)
		if err != nil {
			return bad("mqtt.url", "not a URL: %v", unwrapURLError(err))
		}
		switch u.Scheme {
		case "mqtt", "mqtts", "ws", "wss":
		default:
			return bad("mqtt.url", "scheme must be mqtt, mqtts, ws or wss")
		}
		if u.Host == "" {
			return bad("mqtt.url", "has no host")
		}
	}
	if (c.MQTT.CertFile == "") != (c.MQTT.KeyFile == "") {
		return bad("mqtt.cert_file", "cert_file and key_file go together")
	}
	for key, f := range map[string]string{"mqtt.ca_file": c.MQTT.CAFile, "mqtt.cert_file": c.MQTT.CertFile,
		"mqtt.key_file": c.MQTT.KeyFile} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				return bad(key, "cannot read %s: %v", f, errors.Unwrap(err))
			}
		}
	}
	p := c.MQTT.TopicPrefix
	if p == "" || strings.ContainsAny(p, "+#") || strings.HasSuffix(p, "/") || strings.HasPrefix(p, "$") {
		return bad("mqtt.topic_prefix", "must be a non-empty topic without wildcards (+ #), a leading $ or a trailing /")
	}
	if c.MQTT.TelemetryInterval.Std() < time.Second {
		return bad("mqtt.telemetry_interval", "must be at least 1s")
	}
	if err := checkListen(c.SMTP.Listen); err != nil {
		return bad("smtp.listen", "%v", err)
	}
	if err := checkCIDRs(c.SMTP.Allow); err != nil {
		return bad("smtp.allow", "%v", err)
	}
	if c.SMTP.MaxMessageBytes < 64<<10 {
		return bad("smtp.max_message_bytes", "must be at least 65536 (a camera's snapshot mail)")
	}
	if c.Motion.Hold.Std() < time.Second {
		return bad("motion.hold", "must be at least 1s")
	}
	if c.Outbox.MaxBytes < 1<<20 {
		return bad("outbox.max_bytes", "must be at least 1048576 (1 MiB)")
	}
	return nil
}

// checkCamera validates one camera's settings; key prefixes the field names in errors.
func checkCamera(key string, cam CameraConfig) error {
	bad := func(k, format string, args ...any) error {
		return &ConfigError{Key: joinKey(key, k), Reason: fmt.Sprintf(format, args...)}
	}
	if cam.ID != "" && !idPattern.MatchString(cam.ID) {
		return bad("id", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if cam.URL == "" {
		return bad("url", "must be set (rtsp:// stream or http:// ONVIF device service)")
	}
	u, err := url.Parse(cam.URL)
	if err != nil {
		if strings.Contains(cam.URL, "@") { // the error would quote part of a password
			return bad("url", "not a URL (a password in it must be percent-encoded, or given as password)")
		}
		return bad("url", "not a URL: %v", unwrapURLError(err))
	}
	switch u.Scheme {
	case "rtsp", "rtsps", "http", "https":
	default:
		return bad("url", "scheme must be rtsp, rtsps (a stream) or http, https (an ONVIF device service), not %q", u.Scheme)
	}
	if u.Host == "" {
		return bad("url", "has no host")
	}
	switch cam.Transport {
	case "", "auto", "tcp", "udp":
	default:
		return bad("transport", "must be auto, tcp or udp, not %q", cam.Transport)
	}
	switch cam.Auth {
	case "", "basic":
	default:
		return bad("auth", `must be "" (digest only) or basic, not %q`, cam.Auth)
	}
	if cam.StreamName != "" {
		if err := checkStreamName(cam.StreamName); err != nil {
			return bad("stream_name", "%v", err)
		}
	}
	if cam.SubstreamURL != "" {
		if u, err := url.Parse(cam.SubstreamURL); err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
			return bad("substream_url", "must be an rtsp:// or rtsps:// URL, not %q", redactURL(cam.SubstreamURL))
		}
		if hasUserinfo(cam.SubstreamURL) {
			return bad("substream_url", "carries other credentials than the camera's: the camera's username and "+
				"password go to its substream, so give the substream's URL without user:password@")
		}
	}
	switch cam.Relay {
	case "", "always", "on_demand", "motion":
	default:
		return bad("relay", "must be always, motion or on_demand, not %q", cam.Relay)
	}
	if cam.PreRoll < 0 || cam.PreRoll.Std() > time.Minute {
		return bad("pre_roll", "must be from 0s to 1m, not %s", cam.PreRoll.Std())
	}
	if cam.PostRoll < 0 || cam.PostRoll.Std() > 10*time.Minute {
		return bad("post_roll", "must be from 0s to 10m, not %s", cam.PostRoll.Std())
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be [host]:port, such as :8080 or 192.168.1.1:8080 (%w)", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return fmt.Errorf("host %q must be an IP address", host)
		}
	}
	return nil
}

func checkCIDRs(list []string) error {
	for _, s := range list {
		if _, err := netip.ParsePrefix(s); err != nil {
			if _, err2 := netip.ParseAddr(s); err2 != nil {
				return fmt.Errorf("%q is not a CIDR such as 192.168.1.0/24", s)
			}
		}
	}
	return nil
}

// StreamName fills flussonic.stream_name for one camera.
func (c *Config) StreamName(cameraID string) string {
	r := strings.NewReplacer("{gateway_id}", c.GatewayID, "{camera_id}", cameraID)
	return r.Replace(c.Flussonic.StreamName)
}

// CameraStreamName is the camera's own stream name when it has one, else flussonic.stream_name
// filled in for it.
func (c *Config) CameraStreamName(cameraID, own string) string {
	if own != "" {
		return own
	}
	return c.StreamName(cameraID)
}

// TopicPrefix is mqtt.topic_prefix with {gateway_id} filled in.
func (c *Config) TopicPrefix() string {
	return strings.ReplaceAll(c.MQTT.TopicPrefix, "{gateway_id}", c.GatewayID)
}

// PublishURLOf is the upstream URL of the stream named name (a CameraStreamName), "" while
// flussonic.publish is unset.
func (c *Config) PublishURLOf(name string) string {
	if c.Flussonic.Publish == "" {
		return ""
	}
	u, err := publishURL(c.Flussonic.Publish, name)
	if err != nil {
		return "" // Validate refuses such a publish URL; nothing can be sent to it
	}
	return u
}

// PlayURL is where viewers (and SC's "add camera by parameters" form) play the stream named
// name: flussonic.play, else rtsp on port 554 of the publish host. "" while neither is known.
func (c *Config) PlayURL(name string) string {
	base := c.Flussonic.Play
	if base == "" {
		u, err := url.Parse(c.Flussonic.Publish)
		if err != nil || c.Flussonic.Publish == "" {
			return ""
		}
		base = "rtsp://" + net.JoinHostPort(u.Hostname(), "554") + "/"
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + escapeStreamName(name)
}
