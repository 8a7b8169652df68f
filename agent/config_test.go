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
		{"unknown camera key", "cameras:\n  - id: a\n    url: rtsp://h/\n    pasword: x\n", `config: cameras[0].pasword: unknown key`},
		{"publish scheme", "flussonic: {publish: 'http://x/'}\n", "config: flussonic.publish: scheme must be rtsp, rtsps, rtmp or rtmps"},
		{"publish not a URL", "flussonic: {publish: 'rtsp://[::1'}\n", "config: flussonic.publish: not a URL"},
		{"camera without url", "cameras:\n  - id: a\n", "config: cameras[0].url: must be set"},
		{"camera bad scheme", "cameras:\n  - url: ftp://h/\n", "config: cameras[0].url: scheme must be"},
		{"duplicate camera id", "cameras:\n  - {id: a, url: 'rtsp://h/1'}\n  - {id: a, url: 'rtsp://h/2'}\n", `config: cameras[1].id: "a" is already the id of cameras[0]`},
		{"bool of wrong type", "cameras:\n  - {url: 'rtsp://h/1', audio: maybe}\n", `config: cameras[0].audio: must be true or false, not "maybe"`},
		{"number of wrong type", "outbox: {max_bytes: lots}\n", `config: outbox.max_bytes: must be a whole number, not "lots"`},
		{"bad duration", "motion: {hold: soon}\n", `config: motion.hold: must be a duration such as 30s or 5m, not "soon"`},
		{"list expected", "web: {allow: 10.0.0.0/8}\n", "config: web.allow: must be a list"},
		{"bad cidr", "web: {allow: [10.0.0.0/33]}\n", `config: web.allow: "10.0.0.0/33" is not a CIDR`},
		{"bad listen", "smtp: {listen: 'nonsense'}\n", "config: smtp.listen: must be [host]:port"},
		{"bad log level", "log: {level: loud}\n", `config: log.level: must be debug, info, warn or error, not "loud"`},
		{"mqtt scheme", "mqtt: {url: 'tcp://h:1883'}\n", "config: mqtt.url: scheme must be mqtt, mqtts, ws or wss"},
		{"mqtt prefix wildcard", "mqtt: {topic_prefix: 'a/#'}\n", "config: mqtt.topic_prefix:"},
		{"event naming", "flussonic: {events: [{url: 'http://h/e', naming: v24}]}\n", `config: flussonic.events[0].naming: must be v22 or v23, not "v24"`},
		{"stream name without camera", "flussonic: {stream_name: 'x'}\n", "config: flussonic.stream_name: must contain {camera_id}"},
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
		t.Errorf("camera 0: audio=%v enabled=%v, want audio false (set) and enabled true (default)", cfg.Cameras[0].Audio, cfg.Cameras[0].Enabled)
	}
	if !cfg.Cameras[1].Audio || !cfg.Cameras[1].Enabled {
		t.Errorf("camera 1 should get audio and enabled by default")
	}
	if cfg.Flussonic.Events[0].Naming != "v22" {
		t.Errorf("event naming default = %q, want v22", cfg.Flussonic.Events[0].Naming)
	}
	if cfg.Motion.Hold.Std() != 45*time.Second || cfg.MQTT.TelemetryInterval.Std() != time.Minute {
		t.Errorf("durations: hold %v telemetry %v", cfg.Motion.Hold.Std(), cfg.MQTT.TelemetryInterval.Std())
	}
	if got := cfg.PublishURL("porch"); got != "rtsp://stream.example.com:554/gw1-porch" {
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
	os.WriteFile(p, []byte("gateway_id: gw7\ndata_dir: "+dir+"\n"), 0o600)
	l, err = LoadConfig(p, true, noenv)
	if err != nil || l.GatewayID != "gw7" || l.Path != p {
		t.Fatalf("LoadConfig(%s) = %+v, %v", p, l, err)
	}
}
