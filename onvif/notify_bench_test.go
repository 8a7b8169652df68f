package onvif_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/camgate/camgate/onvif"
)

// BenchmarkNotifyReceiver is the cost of taking one camera's motion Notify on the gateway:
// reading, parsing and handing it to the reader.
func BenchmarkNotifyReceiver(b *testing.B) {
	rcv := onvif.NewNotifyReceiver(slog.New(slog.DiscardHandler))
	b.SetBytes(int64(len(notify12)))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/onvif/notify/cam1/t", strings.NewReader(notify12)))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		<-rcv.Notifications()
	}
}
