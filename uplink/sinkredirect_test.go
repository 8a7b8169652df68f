package uplink

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/testtool"
)

// Issue 13 acceptance 2 (event sink part): a sink that answers 307 to another host gets neither
// the batch nor the API key re-sent there, however often the sink retries.
func TestEventSinkRedirectToAnotherHostSendsNothingThere(t *testing.T) {
	var stolen, asked atomic.Int64
	thief := testtool.ServeHTTP(t, "127.0.0.2:0", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		stolen.Add(1)
	}))
	sink := testtool.ServeHTTP(t, "127.0.0.1:0", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(rw, r, "http://"+thief+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	q := newMemQueue()
	s, err := NewEventSink(EventSinkConfig{URL: "http://" + sink + "/vsaas/api/v2/streamer_events",
		Header: http.Header{"X-Api-Key": {"k3y"}}, Queue: "sink:0", Logger: testLogger(t)}, q)
	if err != nil {
		t.Fatal(err)
	}
	s.retryMin, s.retryMax = 10*time.Millisecond, 20*time.Millisecond
	enqueueEvents(t, q, "sink:0", 0, 1)
	runSink(t, s)
	deadline := time.Now().Add(20 * time.Second)
	for asked.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if asked.Load() < 3 {
		t.Fatalf("the sink was asked %d times, want retries", asked.Load())
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the other host received %d requests", n)
	}
	for time.Now().Before(deadline) && s.LastError() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	if e := s.LastError(); !strings.Contains(e, "another host") {
		t.Errorf("LastError %q does not say the redirect left the host", e)
	}
}
