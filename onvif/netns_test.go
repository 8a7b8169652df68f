package onvif_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netnstest"
	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/onvif"
)

// Multicast tests run inside a network namespace of their own (internal/netnstest), holding
// only a loopback interface: nothing they send can reach a real network.
var inNetns = netnstest.Run

var cameraModels = []struct{ manufacturer, model string }{
	{"AXIS", "M2025-LE"}, {"Dahua", "IPC-HDW2431T-AS"}, {"Hikvision", "DS-2CD2043G2-I"},
	{"Reolink", "RLC-510A"}, {"Uniview", "IPC2122LB"},
}

func TestDiscoveryFindsTwentyCamerasAndFollowsHelloAndBye(t *testing.T) {
	var addrs []string
	for i := 10; i <= 31; i++ {
		addrs = append(addrs, fmt.Sprintf("10.77.0.%d", i))
	}
	inNetns(t, addrs, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		const group = "239.255.255.250:3702"
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		start := func(i int, announce string) *onvifdev.Device {
			m := cameraModels[i%len(cameraModels)]
			dev, err := onvifdev.New(onvifdev.Config{
				Addr: addrs[i] + ":0", AnnounceHost: announce,
				Manufacturer: m.manufacturer, Model: m.model, Name: fmt.Sprintf("%s cam %d", m.manufacturer, i),
				MAC:     fmt.Sprintf("02:77:00:00:00:%02x", i),
				RTSPURL: "rtsp://" + addrs[i] + ":554/live", DiscoveryGroup: group, DiscoveryIP: addrs[i],
			})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := dev.Run(ctx); err != nil {
					t.Errorf("device %d: %v", i, err)
				}
			}()
			return dev
		}
		var devs []*onvifdev.Device
		for i := 0; i < 20; i++ {
			announce := ""
			if i == 4 {
				announce = "0.0.0.0" // a camera that announces 0.0.0.0 must still be reachable
			}
			devs = append(devs, start(i, announce))
		}

		d, err := onvif.NewDiscoverer(onvif.DiscovererConfig{Interfaces: []string{"lo"}, Group: group,
			ProbeInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Run(ctx); err != nil {
				t.Errorf("discoverer: %v", err)
			}
		}()
		var (
			mu      sync.Mutex
			changes []onvif.Change
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case c := <-d.Updates():
					mu.Lock()
					changes = append(changes, c)
					mu.Unlock()
				case <-ctx.Done():
					return
				}
			}
		}()

		waitFor(t, ctx, "all 20 cameras found by probing", func() bool { return len(d.Devices()) == 20 })
		found := map[string]onvif.Found{}
		for _, f := range d.Devices() {
			found[f.XAddr] = f
		}
		for i, dev := range devs {
			f, ok := found[dev.XAddr()]
			m := cameraModels[i%len(cameraModels)]
			if !ok {
				t.Errorf("camera %d at %s not found; found %v", i, dev.XAddr(), keys(found))
				continue
			}
			if f.Hardware != m.model || f.Name != fmt.Sprintf("%s cam %d", m.manufacturer, i) ||
				f.EndpointRef != dev.EndpointRef() {
				t.Errorf("camera %d: found %+v", i, f)
			}
			c, err := onvif.NewClient(onvif.ClientConfig{XAddr: f.XAddr})
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.GetDeviceInformation(ctx)
			if err != nil || info.Manufacturer != m.manufacturer || info.Model != m.model {
				t.Errorf("camera %d: device information %+v, %v", i, info, err)
			}
		}

		// The one-shot scan of `camgate discover` sees the same cameras, beside the running
		// discoverer on the same port.
		once, err := onvif.Discover(ctx, onvif.DiscovererConfig{Interfaces: []string{"lo"}, Group: group}, 2*time.Second)
		if err != nil || len(once) != 20 {
			t.Errorf("Discover: %d devices, %v", len(once), err)
		}

		if err := devs[7].Bye(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the camera that said Bye is gone", func() bool {
			_, there := index(d.Devices(), devs[7].XAddr())
			return !there && len(d.Devices()) == 19
		})

		late := start(20, "") // Run sends Hello; no probe is due for an hour
		waitFor(t, ctx, "the camera that said Hello appears", func() bool {
			_, there := index(d.Devices(), late.XAddr())
			return there
		})

		mu.Lock()
		defer mu.Unlock()
		var kinds []string
		for _, c := range changes {
			switch {
			case c.Device.EndpointRef == devs[7].EndpointRef() && c.Kind == onvif.Gone,
				c.Device.EndpointRef == late.EndpointRef() && c.Kind == onvif.Appeared:
				kinds = append(kinds, c.Kind.String())
			}
		}
		if !slices.Equal(kinds, []string{"gone", "appeared"}) {
			t.Errorf("updates for the leaving and the arriving camera: %v", kinds)
		}
	})
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func index(fs []onvif.Found, xaddr string) (int, bool) {
	for i, f := range fs {
		if f.XAddr == xaddr {
			return i, true
		}
	}
	return -1, false
}

func keys(m map[string]onvif.Found) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
