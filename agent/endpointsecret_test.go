package agent

import (
	"strings"
	"testing"

	"github.com/camgate/camgate/agent/web"
)

// Issue 13 finding 3: a page session that changes the broker's or the publish URL's scheme or
// port, not only its host, without giving the secret again drops the stored secret: mqtts://b:8883
// to mqtt://b:1883 would send the MQTT password in cleartext. A secret stays when host, port and
// scheme are unchanged, or when the new URL is TLS to the same host and port.
func TestConnectionSecretStaysWithItsEndpoint(t *testing.T) {
	tests := []struct {
		name, oldURL, newURL string
		keep                 bool
	}{
		{"unchanged", "mqtts://b:8883", "mqtts://b:8883", true},
		{"the default port written out", "mqtts://b", "mqtts://b:8883", true},
		{"to TLS on the same port", "mqtt://b:8883", "mqtts://b:8883", true},
		{"mqtts to mqtt", "mqtts://b:8883", "mqtt://b:1883", false},
		{"mqtts to mqtt on the same port", "mqtts://b:8883", "mqtt://b:8883", false},
		{"wss to ws", "wss://b/mqtt", "ws://b:443/mqtt", false},
		{"another port", "mqtt://b:1883", "mqtt://b:1884", false},
		{"another host", "mqtt://b:1883", "mqtt://c:1883", false},
	}
	for _, tt := range tests {
		t.Run("mqtt/"+tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MQTT.URL, cfg.MQTT.Username, cfg.MQTT.Password = tt.oldURL, "gw", "mqtt-secret"
			cs, notices := connectionSettings{}.merge(&cfg, web.ConnectionUpdate{
				MQTT: &web.MQTTUpdate{URL: tt.newURL, Username: "gw"}})
			if kept := cs.MQTT.Password == "mqtt-secret"; kept != tt.keep {
				t.Errorf("%s to %s: password kept %v, want %v", tt.oldURL, tt.newURL, kept, tt.keep)
			}
			if cleared := strings.Join(notices, "") == "mqtt."+NoticePasswordCleared; cleared == tt.keep {
				t.Errorf("%s to %s: notices %q", tt.oldURL, tt.newURL, notices)
			}
		})
	}
	publish := []struct {
		name, oldURL, newURL string
		keep                 bool
	}{
		{"unchanged", "rtmps://fls/live/{stream_name}", "rtmps://fls:443/live/{stream_name}", true},
		{"rtmps to rtmp", "rtmps://fls/live/{stream_name}", "rtmp://fls/live/{stream_name}", false},
		{"rtsps to rtsp on its port", "rtsps://fls:322/{stream_name}", "rtsp://fls:322/{stream_name}", false},
		{"another port", "rtsp://fls:554/{stream_name}", "rtsp://fls:5554/{stream_name}", false},
	}
	for _, tt := range publish {
		t.Run("publish/"+tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Flussonic.Publish = joinUserinfo(tt.oldURL, "pub", "publish-secret")
			cs, notices := connectionSettings{}.merge(&cfg, web.ConnectionUpdate{
				Flussonic: &web.FlussonicUpdate{Publish: tt.newURL, Username: "pub"}})
			if kept := strings.Contains(cs.Flussonic.Publish, "publish-secret"); kept != tt.keep {
				t.Errorf("%s to %s: password kept %v (%s), want %v", tt.oldURL, tt.newURL, kept,
					redactURL(cs.Flussonic.Publish), tt.keep)
			}
			if cleared := len(notices) == 1 && strings.Contains(notices[0], NoticePasswordCleared); cleared == tt.keep {
				t.Errorf("%s to %s: notices %q", tt.oldURL, tt.newURL, notices)
			}
		})
	}
}
