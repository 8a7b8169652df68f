package agent

import (
	"context"
	"net"
	"testing"

	"github.com/camgate/camgate/onvif"
)

// The pinning rules, announcement by announcement, as the discoverer and the mDNS browser hand
// them to the loop (the MAC being what the neighbour table gave for the announced address): a
// camera with credentials follows its device only to an address whose MAC is the pinned one;
// any other announcer is shown as moved_to and the camera keeps its address, until the owner
// answers with set_camera.
func TestKnownCameraFollowsOnlyItsMACOrTheOwner(t *testing.T) {
	d := startDaemon(t, `gateway_id: gwp
data_dir: DATA_DIR
web: {listen: ""}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
`)
	const ref, pinnedMAC = "urn:uuid:pinned-cam", "02:13:00:00:00:01"
	xaddr := func(host string) string { return "http://" + host + ":8899/onvif/device_service" }
	announce := func(host, mac string) {
		t.Helper()
		if _, err := d.a.ask(context.Background(), discoveryChange{ip: host, mac: mac, change: onvif.Change{
			Kind: onvif.Appeared, Device: onvif.Found{EndpointRef: ref, XAddr: xaddr(host), Addr: net.ParseIP(host),
				Name: "Porch"}}}); err != nil {
			t.Fatal(err)
		}
	}
	announce("127.0.0.1", pinnedMAC)
	var id string
	for _, c := range d.a.Cameras() {
		if c.Origin == originDiscovered {
			id = c.ID
		}
	}
	if id == "" {
		t.Fatal("the announced device is not in the registry")
	}
	user, pass := "admin", "porch-pass"
	req := CameraRequest{CameraID: id, Username: &user, Password: &pass}
	if _, err := d.a.AddCamera(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	expect := func(step, wantURL, wantMoved string) {
		t.Helper()
		c, err := d.a.cameraStatus(id)
		if err != nil {
			t.Fatal(err)
		}
		if c.URL != wantURL || c.MovedTo != wantMoved {
			t.Errorf("%s: url %q moved_to %q; want %q and %q", step, c.URL, c.MovedTo, wantURL, wantMoved)
		}
	}
	expect("added", xaddr("127.0.0.1"), "")

	steps := []struct {
		name, host, mac     string
		wantURL, wantMoved  string
		ownerURL, ownerPass string // then set_camera with these, when ownerURL is set
	}{
		{name: "another MAC", host: "127.0.0.2", mac: "02:13:00:00:00:66",
			wantURL: xaddr("127.0.0.1"), wantMoved: xaddr("127.0.0.2")},
		{name: "no MAC known for the announcer", host: "127.0.0.5", mac: "",
			wantURL: xaddr("127.0.0.1"), wantMoved: xaddr("127.0.0.5")},
		{name: "the pinned MAC (a DHCP renewal)", host: "127.0.0.3", mac: pinnedMAC,
			wantURL: xaddr("127.0.0.3"), wantMoved: ""},
		{name: "another MAC, then the owner confirms", host: "127.0.0.4", mac: "02:13:00:00:00:44",
			wantURL: xaddr("127.0.0.3"), wantMoved: xaddr("127.0.0.4"), ownerURL: xaddr("127.0.0.4"), ownerPass: "porch-pass"},
	}
	for _, s := range steps {
		announce(s.host, s.mac)
		expect(s.name, s.wantURL, s.wantMoved)
		if s.ownerURL == "" {
			continue
		}
		u, p := s.ownerURL, s.ownerPass
		if _, err := d.a.SetCamera(context.Background(), id, CameraRequest{URL: &u, Password: &p}); err != nil {
			t.Fatal(err)
		}
		expect(s.name+": confirmed", s.ownerURL, "")
		// The confirmed device is now the pinned one: its next announcement is no move at all.
		announce(s.host, s.mac)
		expect(s.name+": announced again", s.ownerURL, "")
	}
}
