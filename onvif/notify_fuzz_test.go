package onvif_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/camgate/camgate/onvif"
)

// FuzzNotify posts arbitrary bodies to a NotifyReceiver, as a hostile or broken camera on the
// LAN may. Seeds (testdata/fuzz/FuzzNotify) are Notify requests shaped like real cameras' event
// messages; plain go test replays them.
func FuzzNotify(f *testing.F) {
	f.Add([]byte(notify12))
	f.Add([]byte(notify11))
	rcv := onvif.NewNotifyReceiver(slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/onvif/notify/cam1/t", bytes.NewReader(body)))
		switch w.Code {
		case http.StatusOK:
			if w.Body.Len() != 0 {
				t.Errorf("200 with a body %q", w.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d", w.Code)
		}
		for len(rcv.Notifications()) > 0 {
			n := <-rcv.Notifications()
			_, _ = n.Motion()
		}
	})
}
