package web

import "testing"

// Issue 13 finding 3 on the page: a publish URL sent back without its ?password= gets the stored
// one again only on the same host, port and scheme (or TLS to the same host and port).
func TestStoredPublishPasswordStaysWithItsEndpoint(t *testing.T) {
	const stored = "rtmps://fls:443/live/{stream_name}?password=pub-secret"
	tests := []struct {
		publish string
		want    string
	}{
		{"rtmps://fls:443/live/{stream_name}", "pub-secret"},
		{"rtmps://fls/live/{stream_name}", "pub-secret"},
		{"rtmp://fls/live/{stream_name}", ""},
		{"rtmp://fls:443/live/{stream_name}", ""},
		{"rtmps://fls:8443/live/{stream_name}", ""},
		{"rtmps://other:443/live/{stream_name}", ""},
	}
	for _, tt := range tests {
		f := FlussonicUpdate{Publish: tt.publish}
		if got := keepPublishPassword(&f, stored); got != tt.want {
			t.Errorf("%s: kept %q, want %q (publish %s)", tt.publish, got, tt.want, f.Publish)
		}
	}
}
