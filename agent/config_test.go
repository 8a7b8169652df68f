package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigRejectsBadInputNamingTheKey(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "gatway_id: x\n", `config: gatway_id: unknown key (did you mean "gateway_id"?) (line 1)`},
		{"unknown nested key", "web:\n  lisen: ':80'\n", `config: web.lisen: unknown key (did you mean "listen"?)`},
		{"unknown camera key", "cameras:\n  - id: a\n    url: rtsp://h/\n    pasword: x\n",
			`config: cameras[0].pasword: unknown key`},
		{"publish scheme", "flussonic: {publish: 'http://x/'}\n",
			"config: flussonic.publish: scheme must be rtsp, rtsps, rtmp or rtmps"},
		{"publish not a URL", "flussonic: {publish: 'rtsp://[::1'}\n", "config: flussonic.publish: not a URL"},
		{"camera without url", "cameras:\n  - id: a\n", "config: cameras[0].url: must be set"},
		{"camera bad scheme", "cameras:\n  - url: ftp://h/\n", "config: cameras[0].url: scheme must be"},
		{"duplicate camera id", "cameras:\n  - {id: a, url: 'rtsp://h/1'}\n  - {id: a, url: 'rtsp://h/2'}\n",
			`config: cameras[1].id: "a" is already the id of cameras[0]`},
		{"bool of wrong type", "cameras:\n  - {url: 'rtsp://h/1', audio: maybe}\n",
			`config: cameras[0].audio: must be true or false, not "maybe"`},
		{"number of wrong type", "outbox: {max_bytes: lots}\n",
			`config: outbox.max_bytes: must be a whole number, not "lots"`},
		{"bad duration", "motion: {hold: soon}\n", `config: motion.hold: must be a duration such as 30s or 5m, not "soon"`},
		{"list expected", "web: {allow: 10.0.0.0/8}\n", "config: web.allow: must be a list"},
		{"bad cidr", "web: {allow: [10.0.0.0/33]}\n", `config: web.allow: "10.0.0.0/33" is not a CIDR`},
		{"bad listen", "smtp: {listen: 'nonsense'}\n", "config: smtp.listen: must be [host]:port"},
		{"bad log level", "log: {level: loud}\n", `config: log.level: must be debug, info, warn or error, not "loud"`},
		{"mqtt scheme", "mqtt: {url: 'tcp://h:1883'}\n", "config: mqtt.url: scheme must be mqtt, mqtts, ws or wss"},
		{"mqtt prefix wildcard", "mqtt: {topic_prefix: 'a/#'}\n", "config: mqtt.topic_prefix:"},
		{"naming removed in revision 2", "flussonic: {publish: 'rtsp://h/', events: [{url: 'http://h/e', naming: v22}]}\n",
			`config: flussonic.events[0].naming: removed in config revision 2: ` +
				`Flussonic names motion events stream_motion_started`},
		{"naming anywhere", "naming: v23\n", `config: naming: removed in config revision 2`},
		{"sink format", "flussonic: {publish: 'rtsp://h/', events: [{url: 'http://h/e', format: v23}]}\n",
			`config: flussonic.events[0].format: must be event_sink or episodes, not "v23"`},
		{"header name", "flussonic: {publish: 'rtsp://h/', events: [{url: 'http://h/e', headers: {'X Key': v}}]}\n",
			`config: flussonic.events[0].headers: "X Key" is not an HTTP header name`},
		{"header from unset env",
			"flussonic: {publish: 'rtsp://h/', events: [{url: 'http://h/e', headers: {X-Key: '${CAMGATE_TEST_UNSET_VAR}'}}]}\n",
			`config: flussonic.events[0].headers.X-Key: environment variable CAMGATE_TEST_UNSET_VAR is not set`},
		{"headers not a mapping", "flussonic: {publish: 'rtsp://h/', events: [{url: 'http://h/e', headers: [a]}]}\n",
			`config: flussonic.events[0].headers: must be a mapping`},
		{"stream_name twice in publish", "flussonic: {publish: 'rtsp://h/{stream_name}/{stream_name}'}\n",
			"config: flussonic.publish: has {stream_name} more than once"},
		{"stream_name in the query", "flussonic: {publish: 'rtsp://h/live?name={stream_name}'}\n",
			"config: flussonic.publish: {stream_name} must be in the path"},
		{"stream_name in the host", "flussonic: {publish: 'rtsp://{stream_name}.h/'}\n", "config: flussonic.publish:"},
		{"rtmp with userinfo", "flussonic: {publish: 'rtmp://u:p@h/static/'}\n",
			"config: flussonic.publish: RTMP has no user:password@; Flussonic checks a stream's publish password as ?password="},
		{"publish fragment", "flussonic: {publish: 'rtsp://h/#x'}\n", "config: flussonic.publish: must not have a #fragment"},
		{"play scheme", "flussonic: {play: 'http://h/'}\n", "config: flussonic.play: scheme must be rtsp or rtsps"},
		{"play with a query", "flussonic: {play: 'rtsp://h/?password=x'}\n",
			"config: flussonic.play: must be a plain base URL"},
		{"api scheme", "flussonic: {publish: 'rtsp://h/', api: {url: 'ftp://h/'}}\n",
			"config: flussonic.api.url: must be an http:// or https:// URL"},
		{"api credentials without url", "flussonic: {api: {username: a}}\n", "config: flussonic.api.url: must be set"},
		{"camera transport", "cameras:\n  - {url: 'rtsp://h/1', transport: quic}\n",
			`config: cameras[0].transport: must be auto, tcp or udp, not "quic"`},
		{"camera auth", "cameras:\n  - {url: 'rtsp://h/1', auth: plain}\n",
			`config: cameras[0].auth: must be "" (digest only) or basic`},
		{"camera stream name", "cameras:\n  - {url: 'rtsp://h/1', stream_name: 'a b'}\n",
			`config: cameras[0].stream_name: "a b": no spaces`},
		{"two cameras one stream",
			"cameras:\n  - {id: a, url: 'rtsp://h/1', stream_name: s}\n  - {id: b, url: 'rtsp://h/2', stream_name: s}\n",
			`config: cameras[1].stream_name: "s" is already the stream of cameras[0]`},
		{"relay unknown", "cameras:\n  - {url: 'rtsp://h/1', relay: never}\n",
			`config: cameras[0].relay: must be always, motion or on_demand, not "never"`},
		{"substream_url bad", "cameras:\n  - {url: 'rtsp://h/1', substream_url: 'http://h/2'}\n",
			"config: cameras[0].substream_url: must be an rtsp:// or rtsps:// URL"},
		{"pre_roll bound", "cameras:\n  - {url: 'rtsp://h/1', pre_roll: 2m}\n",
			"config: cameras[0].pre_roll: must be from 0s to 1m"},
		{"cache_bytes too small", "relay: {cache_bytes: 1000}\n",
			"config: relay.cache_bytes: 1000: must be 0 (no GOP cache) or from 65536 to 268435456"},
		{"cache_bytes negative", "relay: {cache_bytes: -1}\n", "config: relay.cache_bytes: -1: must be 0"},
		{"cache_bytes too large", "relay: {cache_bytes: 1073741824}\n", "config: relay.cache_bytes: 1073741824: must be 0"},
		{"stream name without camera", "flussonic: {stream_name: 'x'}\n",
			"config: flussonic.stream_name: must contain {camera_id}"},
		{"key given twice", "data_dir: /a\ndata_dir: /b\n", "config: data_dir:"},
		{"not a mapping", "- a\n- b\n", "config: the file must be a mapping"},
		{"broken yaml", "web: {listen: ':80'\n", "config: not valid YAML"},
		{"gateway id with slash", "gateway_id: 'a/b'\n", "config: gateway_id: must be"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatalf("accepted %q", tc.yaml)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n  %s\nshould contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestParseConfigOverlaysDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
gateway_id: gw1
cameras:
  - id: porch
    url: rtsp://10.0.0.20:554/Streaming/Channels/101
    audio: false
  - url: http://10.0.0.21/onvif/device_service
flussonic:
  publish: rtsp://stream.example.com:554/
  events:
    - url: http://watcher.example.com/vsaas/api/v2/streamer_events
motion: {hold: 45s}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Cameras[0].Audio || !cfg.Cameras[0].Enabled {
		t.Errorf("camera 0: audio=%v enabled=%v, want audio false (set) and enabled true (default)",
			cfg.Cameras[0].Audio, cfg.Cameras[0].Enabled)
	}
	if !cfg.Cameras[1].Audio || !cfg.Cameras[1].Enabled {
		t.Errorf("camera 1 should get audio and enabled by default")
	}
	if s := cfg.Flussonic.Events[0]; s.Format != FormatEventSink || cfg.SinkServer(0) != "stream.example.com" {
		t.Errorf("event sink defaults: format %q server %q, want event_sink and the publish host",
			s.Format, cfg.SinkServer(0))
	}
	if cfg.Motion.Hold.Std() != 45*time.Second || cfg.MQTT.TelemetryInterval.Std() != time.Minute {
		t.Errorf("durations: hold %v telemetry %v", cfg.Motion.Hold.Std(), cfg.MQTT.TelemetryInterval.Std())
	}
	if got := cfg.PublishURLOf(cfg.StreamName("porch")); got != "rtsp://stream.example.com:554/gw1-porch" {
		t.Errorf("PublishURL = %q", got)
	}
	if got := cfg.TopicPrefix(); got != "camgate/gw1" {
		t.Errorf("TopicPrefix = %q", got)
	}
}

func TestEmptyFileIsAllDefaults(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "---\n"} {
		cfg, err := ParseConfig([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("defaults do not validate: %v", err)
		}
	}
}

func TestSecretsFromEnvironment(t *testing.T) {
	cfg, err := ParseConfig([]byte("cameras:\n  - {id: porch-1, url: 'rtsp://h/'}\nmqtt: {password: file}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CAMGATE_MQTT_PASSWORD":           "from-env",
		"CAMGATE_CAMERA_PORCH_1_PASSWORD": "cam-secret",
	}
	cfg.ApplyEnv(func(k string) string { return env[k] })
	if cfg.MQTT.Password != "from-env" || cfg.Cameras[0].Password != "cam-secret" {
		t.Fatalf("env not applied: mqtt %q camera %q", cfg.MQTT.Password, cfg.Cameras[0].Password)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	noenv := func(string) string { return "" }
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml"), true, noenv); err == nil {
		t.Error("an explicitly named missing file must be an error")
	}
	l, err := LoadConfig(filepath.Join(dir, "missing.yaml"), false, noenv)
	if err != nil {
		t.Fatalf("the default path missing must mean defaults: %v", err)
	}
	if l.Path != "" || l.GatewayID == "" || len(l.Notes) == 0 {
		t.Errorf("defaults: path %q id %q notes %v", l.Path, l.GatewayID, l.Notes)
	}
	p := filepath.Join(dir, "camgate.yaml")
	if err := os.WriteFile(p, []byte("gateway_id: gw7\ndata_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = LoadConfig(p, true, noenv)
	if err != nil || l.GatewayID != "gw7" || l.Path != p {
		t.Fatalf("LoadConfig(%s) = %+v, %v", p, l, err)
	}
}

// Every form SPEC §2 and §4 give flussonic.publish puts the stream name where Flussonic reads it,
// keeping the query that carries the stream's publish password.
func TestPublishURLForms(t *testing.T) {
	cases := []struct{ publish, name, want string }{
		{"rtsp://fl.example.com:554/{stream_name}?password=SECRET", "gw1-porch",
			"rtsp://fl.example.com:554/gw1-porch?password=SECRET"},
		{"rtsp://fl.example.com/", "gw1-porch", "rtsp://fl.example.com/gw1-porch"},
		{"rtsp://fl.example.com", "gw1-porch", "rtsp://fl.example.com/gw1-porch"},
		{"rtsp://fl.example.com/?password=a%26b", "cam", "rtsp://fl.example.com/cam?password=a%26b"},
		{"rtmp://fl.example.com/", "cam", "rtmp://fl.example.com/cam"},
		{"rtmp://fl.example.com/static/", "cam", "rtmp://fl.example.com/static/cam"},
		{"rtmp://fl.example.com/live", "cam", "rtmp://fl.example.com/live/cam"},
		{"rtmps://fl.example.com/live/{stream_name}?password=p", "cam", "rtmps://fl.example.com/live/cam?password=p"},
		{"rtsp://fl.example.com/{stream_name}", "client15/published1", "rtsp://fl.example.com/client15/published1"},
		{"rtsp://fl.example.com/{stream_name}", "Кам 1", "rtsp://fl.example.com/%D0%9A%D0%B0%D0%BC%201"},
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		cfg.Flussonic.Publish = tc.publish
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", tc.publish, err)
			continue
		}
		if got := cfg.PublishURLOf(tc.name); got != tc.want {
			t.Errorf("%s with %q = %s, want %s", tc.publish, tc.name, got, tc.want)
		}
	}
}

func TestPlayURL(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Flussonic.Publish = "rtmp://fl.example.com:1935/static/?password=x"
	if got := cfg.PlayURL("gw1-porch"); got != "rtsp://fl.example.com:554/gw1-porch" {
		t.Errorf("play from the publish host = %s", got)
	}
	cfg.Flussonic.Play = "rtsp://view.example.com:8554"
	if got := cfg.PlayURL("gw1-porch"); got != "rtsp://view.example.com:8554/gw1-porch" {
		t.Errorf("flussonic.play = %s", got)
	}
}

// Every key of SPEC §2 parses, with the values that block gives.
func TestSpecBlockParses(t *testing.T) {
	t.Setenv("CAMGATE_TEST_SINK_KEY", "k1")
	cfg, err := ParseConfig([]byte(`
cameras:
  - id: porch
    url: rtsp://10.0.0.20:554/Streaming/Channels/101
    stream_name: watcher-abc
    transport: auto
    auth: basic
    substream_url: ""
    priority: 0
    relay: always
    pre_roll: 5s
    post_roll: 10s
relay: {cache_bytes: 8388608}
flussonic:
  publish: rtsp://stream.example.com:554/{stream_name}?password=SECRET
  play: ""
  api: {url: "http://stream.example.com/streamer/api/v3", username: admin, password: pw}
  events:
    - url: http://sc.example.com:8071/api/v1/flussonic/event
      format: event_sink
      server: streamer1
      headers: {X-Api-Key: "${CAMGATE_TEST_SINK_KEY}"}
    - url: http://central.example.com/central/api/v3/episodes
      format: episodes
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	got := cfg.PublishURLOf(cfg.CameraStreamName("porch", cfg.Cameras[0].StreamName))
	if got != "rtsp://stream.example.com:554/watcher-abc?password=SECRET" {
		t.Errorf("publish = %s", got)
	}
	h, err := cfg.SinkHeaders(0)
	if err != nil || h.Get("X-Api-Key") != "k1" {
		t.Errorf("headers = %v, %v", h, err)
	}
	if cfg.SinkServer(0) != "streamer1" || cfg.SinkServer(1) != "stream.example.com" {
		t.Errorf("servers %q %q", cfg.SinkServer(0), cfg.SinkServer(1))
	}
}
