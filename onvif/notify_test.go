package onvif_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/onvif"
)

// serveReceiver serves a NotifyReceiver on loopback and returns it with its consumer URL.
func serveReceiver(t *testing.T) (*onvif.NotifyReceiver, string) {
	t.Helper()
	rcv := onvif.NewNotifyReceiver(nil)
	mux := http.NewServeMux()
	mux.Handle("POST /onvif/notify/cam1/", rcv)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return rcv, srv.URL + "/onvif/notify/cam1/3f9a1c"
}

// waitMotion reads notifications until a motion alarm in the wanted state and operation.
func waitMotion(ctx context.Context, t *testing.T, ch <-chan onvif.Notification, want bool, op string) {
	t.Helper()
	for {
		select {
		case n := <-ch:
			if on, ok := n.Motion(); ok && on == want && n.Operation == op {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no %s motion=%v notification", op, want)
		}
	}
}

// waitFor polls cond until it holds; the machine may be loaded, so the wait is generous.
func pollUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestCameraWithoutPullPointSaysNotSupported(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{NoPullPoint: true})
	c := newClient(t, dev.XAddr(), "", "")
	ctx := testContext(t)
	if _, err := c.GetServices(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreatePullPointSubscription(ctx, 10*time.Second)
	if !errors.Is(err, onvif.ErrNotSupported) {
		t.Fatalf("CreatePullPointSubscription on a camera without PullPoint: %v, want ErrNotSupported", err)
	}
	if errors.Is(err, onvif.ErrUnauthorized) {
		t.Errorf("%v also matches ErrUnauthorized", err)
	}
}

func TestSubscribedCameraPostsMotionToTheReceiver(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{NoPullPoint: true, Auth: onvifdev.AuthWSSecurity, Username: "u", Password: "p",
		ClockSkew: 5 * time.Hour})
	c := newClient(t, dev.XAddr(), "u", "p")
	ctx := testContext(t)
	if _, err := onvif.Inventory(ctx, c); err != nil {
		t.Fatal(err)
	}
	rcv, consumer := serveReceiver(t)
	sub, err := c.Subscribe(ctx, consumer, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sub.Address, "http://127.0.0.1:") || sub.TerminationTime.Sub(sub.CurrentTime) != 10*time.Minute {
		t.Errorf("subscription %+v", sub)
	}
	waitMotion(ctx, t, rcv.Notifications(), false, "Initialized")
	dev.SetMotion(true)
	waitMotion(ctx, t, rcv.Notifications(), true, "Changed")
	dev.SetMotion(false)
	waitMotion(ctx, t, rcv.Notifications(), false, "Changed")
	if _, err := c.Renew(ctx, sub, 10*time.Minute); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if dev.Subscriptions() != 0 || dev.NotifySubscriptions() != 1 {
		t.Errorf("device has %d pull point and %d notify subscriptions, want 0 and 1",
			dev.Subscriptions(), dev.NotifySubscriptions())
	}
}

func TestExpiredSubscriptionGetsNoMoreNotifications(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{NoPullPoint: true})
	c := newClient(t, dev.XAddr(), "", "")
	ctx := testContext(t)
	rcv, consumer := serveReceiver(t)
	sub, err := c.Subscribe(ctx, consumer, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitMotion(ctx, t, rcv.Notifications(), false, "Initialized")
	pollUntil(ctx, t, "the subscription to expire", func() bool { return dev.NotifySubscriptions() == 0 })
	sent := dev.NotifiesSent()
	dev.SetMotion(true)
	time.Sleep(300 * time.Millisecond) // a post would have had time to arrive; none may
	select {
	case n := <-rcv.Notifications():
		t.Fatalf("expired subscription still notified: %+v", n)
	default:
	}
	if got := dev.NotifiesSent(); got != sent {
		t.Errorf("device sent %d notifies after expiry", got-sent)
	}
	if _, err := c.Renew(ctx, sub, time.Minute); err == nil {
		t.Error("Renew of an expired subscription: no error")
	}
}

func TestBasicNotificationRenewsAndSubscribesAgainAfterARestart(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{NoPullPoint: true, Auth: onvifdev.AuthHTTPDigest, Username: "u", Password: "p"})
	c := newClient(t, dev.XAddr(), "u", "p")
	ctx := testContext(t)
	if _, err := c.GetServices(ctx); err != nil {
		t.Fatal(err)
	}
	rcv, consumer := serveReceiver(t)
	bn, err := onvif.NewBasicNotification(onvif.BasicNotificationConfig{Client: c, Consumer: consumer,
		Lifetime: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bn.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitMotion(ctx, t, rcv.Notifications(), false, "Initialized")

	// Renewed at 80% of two seconds, the subscription outlives its first lifetime.
	pollUntil(ctx, t, "two renewals", func() bool { return dev.NotifyRenewals() >= 2 })
	dev.SetMotion(true)
	waitMotion(ctx, t, rcv.Notifications(), true, "Changed")

	dev.Restart() // the camera forgets the subscription; the next renewal fails and it subscribes again
	waitMotion(ctx, t, rcv.Notifications(), true, "Initialized")
	dev.SetMotion(false)
	waitMotion(ctx, t, rcv.Notifications(), false, "Changed")
	if n := dev.NotifySubscriptions(); n != 1 {
		t.Errorf("%d subscriptions on the device, want 1", n)
	}

	dev.Restart()
	bn.Resubscribe() // news of a reboot: no waiting for the renewal to fail
	waitMotion(ctx, t, rcv.Notifications(), false, "Initialized")
}

func TestBasicNotificationStopsWhenTheCameraHasNoEvents(t *testing.T) {
	fault, err := os.ReadFile("testdata/fixtures/faults/Fault_ActionNotSupported_gsoap.xml")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/soap+xml")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(fault)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/onvif/device_service", "", "")
	bn, err := onvif.NewBasicNotification(onvif.BasicNotificationConfig{Client: c,
		Consumer: "http://127.0.0.1:8080/onvif/notify/x/y"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bn.Run(testContext(t)); !errors.Is(err, onvif.ErrNotSupported) {
		t.Fatalf("Run: %v, want ErrNotSupported", err)
	}
}

func TestNewBasicNotificationWantsAnHTTPConsumer(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1/onvif/device_service", "", "")
	for _, consumer := range []string{"", "127.0.0.1:8080/notify", "ftp://127.0.0.1/x", "http:///path"} {
		if _, err := onvif.NewBasicNotification(onvif.BasicNotificationConfig{Client: c, Consumer: consumer}); err == nil {
			t.Errorf("consumer %q accepted", consumer)
		}
	}
	if _, err := onvif.NewBasicNotification(onvif.BasicNotificationConfig{Consumer: "http://127.0.0.1/x"}); err == nil {
		t.Error("no client accepted")
	}
}

const notify12 = `<?xml version="1.0" encoding="UTF-8"?>` +
	`<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" ` +
	`xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tns1="http://www.onvif.org/ver10/topics">` +
	`<env:Header><wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">` +
	`http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify</wsa:Action></env:Header>` +
	`<env:Body><wsnt:Notify><wsnt:NotificationMessage>` +
	`<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">` +
	`tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>` +
	`<wsnt:Message><tt:Message UtcTime="2024-05-01T10:00:00Z" PropertyOperation="Changed">` +
	`<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSource_1"/></tt:Source>` +
	`<tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message>` +
	`</wsnt:NotificationMessage></wsnt:Notify></env:Body></env:Envelope>`

const notify11 = `<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">` +
	`<SOAP-ENV:Body><Notify xmlns="http://docs.oasis-open.org/wsn/b-2"><NotificationMessage>` +
	`<Topic>tns1:VideoSource/MotionAlarm</Topic><Message>` +
	`<Message xmlns="http://www.onvif.org/ver10/schema" UtcTime="2024-05-01T10:00:01" PropertyOperation="Changed">` +
	`<Source/><Data><SimpleItem Name="State" Value="false"/></Data></Message></Message>` +
	`</NotificationMessage></Notify></SOAP-ENV:Body></SOAP-ENV:Envelope>`

func TestNotifyReceiverTakesNotifiesAndRefusesTheRest(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
		status int
		motion []bool // what the reader gets
	}{
		{"SOAP 1.2 cell motion on", "POST", notify12, http.StatusOK, []bool{true}},
		{"SOAP 1.1 motion alarm off", "POST", notify11, http.StatusOK, []bool{false}},
		{"two messages in one Notify", "POST",
			strings.Replace(notify12, "</wsnt:Notify>", notifyMessageOff+"</wsnt:Notify>", 1),
			http.StatusOK, []bool{true, false}},
		{"empty Notify", "POST", `<e:Envelope xmlns:e="x"><e:Body><Notify/></e:Body></e:Envelope>`, http.StatusOK, nil},
		{"not XML", "POST", "motion!", http.StatusBadRequest, nil},
		{"empty body", "POST", "", http.StatusBadRequest, nil},
		{"truncated", "POST", notify12[:len(notify12)/2], http.StatusBadRequest, nil},
		{"envelope without Notify", "POST", `<e:Envelope xmlns:e="x"><e:Body><PullMessagesResponse/></e:Body></e:Envelope>`,
			http.StatusBadRequest, nil},
		{"a fault", "POST",
			`<e:Envelope xmlns:e="x"><e:Body><e:Fault><faultcode>Server</faultcode></e:Fault></e:Body></e:Envelope>`,
			http.StatusBadRequest, nil},
		{"too deep", "POST",
			`<e:Envelope xmlns:e="x"><e:Body><Notify>` + strings.Repeat("<a>", 5000) + strings.Repeat("</a>", 5000) +
				`</Notify></e:Body></e:Envelope>`,
			http.StatusBadRequest, nil},
		{"over 1 MiB", "POST", strings.Replace(notify12, "<wsnt:Notify>",
			"<wsnt:Notify><!--"+strings.Repeat("x", 1<<20)+"-->", 1), http.StatusRequestEntityTooLarge, nil},
		{"GET", "GET", "", http.StatusMethodNotAllowed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := onvif.NewNotifyReceiver(nil)
			w := httptest.NewRecorder()
			rcv.ServeHTTP(w, httptest.NewRequest(tt.method, "http://192.168.1.1:8080/onvif/notify/cam1/t",
				strings.NewReader(tt.body)))
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			var got []bool
			for len(rcv.Notifications()) > 0 {
				n := <-rcv.Notifications()
				on, ok := n.Motion()
				if !ok {
					t.Errorf("not a motion alarm: %+v", n)
				}
				got = append(got, on)
			}
			if len(got) != len(tt.motion) || (len(got) > 0 && got[0] != tt.motion[0]) ||
				(len(got) > 1 && got[1] != tt.motion[1]) {
				t.Errorf("motion %v, want %v", got, tt.motion)
			}
		})
	}
}

const notifyMessageOff = `<wsnt:NotificationMessage><wsnt:Topic>tns1:VideoSource/MotionAlarm</wsnt:Topic>` +
	`<wsnt:Message><tt:Message UtcTime="2024-05-01T10:00:05Z" PropertyOperation="Changed"><tt:Data>` +
	`<tt:SimpleItem Name="State" Value="false"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>`

func TestNotifyReceiverDropsRatherThanWaitForASlowReader(t *testing.T) {
	rcv := onvif.NewNotifyReceiver(nil)
	const posts = 100
	for i := range posts {
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, httptest.NewRequest("POST", "/onvif/notify/cam1/t", strings.NewReader(notify12)))
		if w.Code != http.StatusOK {
			t.Fatalf("post %d: status %d", i, w.Code)
		}
	}
	kept := len(rcv.Notifications())
	if kept == 0 || uint64(kept)+rcv.Dropped() != posts {
		t.Errorf("kept %d and dropped %d of %d", kept, rcv.Dropped(), posts)
	}
}

func TestLocalAddrForIsTheAddressThatReachesTheCamera(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:554", "127.0.0.1"},
		{"http://127.0.0.1:8000/onvif/device_service", "127.0.0.1"},
		{"rtsp://127.0.0.1/Streaming/Channels/101", "127.0.0.1"},
	}
	for _, tt := range tests {
		got, err := onvif.LocalAddrFor(tt.remote)
		if err != nil || got != netip.MustParseAddr(tt.want) {
			t.Errorf("LocalAddrFor(%q) = %v, %v; want %s", tt.remote, got, err, tt.want)
		}
	}
	if got, err := onvif.LocalAddrFor("[::1]:80"); err == nil && got != netip.IPv6Loopback() {
		t.Errorf("LocalAddrFor([::1]:80) = %v", got)
	}
	for _, bad := range []string{"", "http:///x"} {
		if got, err := onvif.LocalAddrFor(bad); err == nil {
			t.Errorf("LocalAddrFor(%q) = %v, want an error", bad, got)
		}
	}
}
