package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Cameras post ONVIF notifications without a session; only POSTs under /onvif/notify/ reach the
// handler, and bodies are bounded.
func TestNotifyEndpointTakesCameraPostsWithoutASession(t *testing.T) {
	var got []string
	notify := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		got = append(got, r.URL.Path+" "+string(b))
		w.WriteHeader(http.StatusAccepted)
	})
	s, err := NewServer(Config{Addr: "127.0.0.1:0", PairCode: "1234-5678", Backend: newFakeBackend(), Notify: notify})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/onvif/notify/cam1/token", "<Notify/>", http.StatusAccepted},
		{"GET", "/onvif/notify/cam1/token", "", http.StatusNotFound}, // the static files, not the handler
		{"POST", "/onvif/notify/cam1/token", strings.Repeat("x", 2<<20), http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, "http://192.168.1.1:8080"+tc.path, strings.NewReader(tc.body))
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s (%d bytes): status %d, want %d", tc.method, tc.path, len(tc.body), w.Code, tc.want)
		}
	}
	if len(got) != 1 || got[0] != "/onvif/notify/cam1/token <Notify/>" {
		t.Errorf("handler saw %q", got)
	}
}
