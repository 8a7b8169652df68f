package agent

import (
	"errors"
	"testing"
)

// FuzzParseConfig: whatever a config file holds, parsing ends in a config or a *ConfigError
// naming the problem, never a panic or a hang.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"", "gateway_id: gw\n", "cameras:\n  - {id: a, url: 'rtsp://h/'}\n",
		"flussonic: {publish: 'rtsp://u:p@h:554/', events: [{url: 'http://h/e', naming: v23}]}\n",
		"motion: {hold: 30s}\noutbox: {max_bytes: 1048576}\n", "a: &x [*x]\n", "- 1\n", "{{{",
		"cameras: [{url: !!binary aGVsbG8=}]\n", "web: {allow: [10.0.0.0/8, 'fc00::/7']}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err == nil {
			err = cfg.Validate()
		}
		var ce *ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
		}
	})
}

// FuzzHandleCommandDecode: any command payload decodes to a request or an error in words.
func FuzzHandleCommandDecode(f *testing.F) {
	for _, seed := range []string{`{"id":"1","url":"rtsp://h/"}`, `{"id":1}`, `[]`, `{"camera_id":7}`,
		`{"action":"move","pan":2}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req struct {
			ID string `json:"id"`
			CameraRequest
		}
		if err := decodeCommand(data, &req); err == nil {
			c := defaultCamera()
			req.apply(&c)
			_ = checkCamera("", c)
		}
	})
}
