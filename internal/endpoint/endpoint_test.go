package endpoint

import "testing"

func TestSecretMayStay(t *testing.T) {
	tests := []struct {
		name, old, new string
		want           bool
	}{
		{"unchanged", "mqtts://b:8883", "mqtts://b:8883", true},
		{"the default port written out", "mqtt://b", "mqtt://b:1883", true},
		{"case, root dot and IPv4-mapped forms", "mqtt://Broker.Lan.:1883", "mqtt://broker.lan", true},
		{"IPv4-mapped IPv6", "mqtt://[::ffff:10.0.0.1]:1883", "mqtt://10.0.0.1:1883", true},
		{"a path or query of its own", "rtsp://fls:554/live/{stream_name}", "rtsp://fls/other?x=1", true},
		{"to TLS on the same host and port", "mqtt://b:8883", "mqtts://b:8883", true},
		{"TLS to TLS on the same host and port", "mqtts://b:443", "wss://b:443", true},
		{"TLS to cleartext, port changed with it", "mqtts://b:8883", "mqtt://b:1883", false},
		{"TLS to cleartext on the same port", "mqtts://b:8883", "mqtt://b:8883", false},
		{"wss to ws", "wss://b/mqtt", "ws://b:443/mqtt", false},
		{"rtsps to rtsp", "rtsps://fls/live", "rtsp://fls:322/live", false},
		{"another port", "mqtt://b:1883", "mqtt://b:1884", false},
		{"another default port", "mqtt://b", "mqtts://b", false},
		{"another host", "mqtt://b:1883", "mqtt://c:1883", false},
		{"cleartext to cleartext of another kind", "ws://b:80", "http://b:80", false},
		{"no host", "mqtt://b:1883", "mqtt:b", false},
		{"does not parse", "mqtt://b:1883", "mqtt://b:x", false},
		{"an unknown scheme without a port", "foo://b", "foo://b", false},
		{"an unknown scheme with one", "foo://b:9", "foo://b:9", true},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SecretMayStay(tt.old, tt.new); got != tt.want {
				t.Errorf("SecretMayStay(%q, %q) = %v, want %v", tt.old, tt.new, got, tt.want)
			}
		})
	}
}

// FuzzSecretMayStay: any pair of URLs gets an answer, and a URL with a host and a known or
// written port keeps its secret when it does not change.
func FuzzSecretMayStay(f *testing.F) {
	for _, seed := range [][2]string{{"mqtts://b:8883", "mqtt://b:1883"}, {"mqtt://[::1]", "mqtt://[::ffff:1.2.3.4]"},
		{"rtsp://u:p@h/x", "rtsp://h:554/y"}, {"", "mqtt://%zz"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		_ = SecretMayStay(a, b)
		if _, ok := parse(a); ok && !SecretMayStay(a, a) {
			t.Fatalf("%q does not keep its own secret", a)
		}
	})
}

func TestSameHost(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"rtsp://192.168.1.20:554/sub", "rtsp://192.168.1.20/main", true},
		{"http://192.168.1.20/onvif/device_service", "rtsp://192.168.1.20:554/main", true},
		{"rtsp://Cam.Lan./sub", "rtsp://cam.lan:8554/main", true},
		{"rtsp://[::ffff:192.168.1.20]/sub", "rtsp://192.168.1.20/main", true},
		{"rtsp://192.168.1.21/sub", "rtsp://192.168.1.20/main", false},
		{"rtsp://192.168.1.20/sub", "rtsp://a b/main", false},
		{"rtsp:opaque", "rtsp:opaque", false},
	}
	for _, tt := range tests {
		if got := SameHost(tt.a, tt.b); got != tt.want {
			t.Errorf("SameHost(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
