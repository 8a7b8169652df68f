package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/mdns"
	"github.com/camgate/camgate/onvif"
)

// discovered is a device WS-Discovery found, as the agent remembers it. The camera_id it was
// given is kept (in the store) for as long as the device lives, so rediscovery and IP changes
// never change it.
type discovered struct {
	CameraID    string    `json:"camera_id"`
	EndpointRef string    `json:"endpoint_ref"`
	XAddr       string    `json:"xaddr"`
	Name        string    `json:"name,omitempty"`
	Hardware    string    `json:"hardware,omitempty"`
	IP          string    `json:"ip"`
	MAC         string    `json:"mac,omitempty"`
	LastSeen    time.Time `json:"last_seen"`
	// MovedTo is the address a device claiming this endpoint reference last announced from,
	// when that announcement was not followed (see pinning.go); MovedMAC is the announcer's MAC.
	MovedTo  string `json:"moved_to,omitempty"`
	MovedMAC string `json:"moved_mac,omitempty"`
	present  bool   // heard from and not said Bye since this run started
}

const settingDiscovered = "discovered"

// discoveredCameraID follows SPEC §3 as far as an unauthenticated device allows: the MAC when
// the kernel's neighbour table knows it (it does for a camera on the LAN that just answered),
// else a hash of the WS-Discovery endpoint reference, which a device keeps across IP changes.
func discoveredCameraID(f onvif.Found, mac string) string {
	if mac != "" {
		return CameraIDFromMAC(mac)
	}
	sum := sha256.Sum256([]byte(strings.ToLower(f.EndpointRef)))
	return "cam-e" + hex.EncodeToString(sum[:])[:11]
}

// neighbourMAC looks an IPv4 address up in the kernel's ARP table.
func neighbourMAC(ip string) string {
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 4 && fields[0] == ip && fields[3] != "00:00:00:00:00:00" {
			return fields[3]
		}
	}
	return ""
}

func (a *Agent) loadDiscovered() map[string]*discovered {
	found := map[string]*discovered{}
	b, ok, err := a.db.Settings().Get(settingDiscovered)
	if err != nil || !ok {
		return found
	}
	if err := json.Unmarshal(b, &found); err != nil {
		a.log.Warn("store: discovered device list does not parse; starting afresh", "err", err)
		return map[string]*discovered{}
	}
	return found
}

// saveDiscovered hands the writer the discovered devices as they are now; a newer save makes a
// pending older one unnecessary (coalesced), and a failed one is logged and retried by the next.
func (r *registry) saveDiscovered() {
	if err := r.putSetting(settingDiscovered, "saving discovered devices", r.found, false); err != nil {
		r.a.log.Error("encoding discovered devices", "err", err)
	}
}

// runDiscovery follows WS-Discovery and mDNS: devices that appear enter the registry (disabled
// until given credentials), devices that say Bye or go silent leave it unless they were added.
func (a *Agent) runDiscovery(ctx context.Context, cfg *Config, wg *sync.WaitGroup) {
	if cfg.Discovery.MDNS {
		wg.Add(1)
		go func() { defer wg.Done(); a.runMDNS(ctx, cfg.Discovery.Interfaces, cfg.Discovery.Interval.Std()) }()
	}
	if !cfg.Discovery.ONVIF {
		return
	}
	d, err := onvif.NewDiscoverer(onvif.DiscovererConfig{
		Interfaces: cfg.Discovery.Interfaces, ProbeInterval: cfg.Discovery.Interval.Std(),
		Logger: a.log.With("part", "ws-discovery"),
	})
	if err != nil {
		a.log.Error("discovery disabled", "err", err)
		return
	}
	a.discoverer.Store(d)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("discovery stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ch, ok := <-d.Updates():
				if !ok {
					return
				}
				a.onDiscovery(ch)
			}
		}
	}()
}

// onDiscovery hands the loop a device that appeared or left. The neighbour table is read here,
// not in the loop.
func (a *Agent) onDiscovery(ch onvif.Change) {
	q := discoveryChange{change: ch, ip: ch.Device.Addr.String()}
	if u, err := url.Parse(ch.Device.XAddr); err == nil && u.Hostname() != "" {
		q.ip = u.Hostname()
	}
	if ch.Kind != onvif.Gone {
		q.mac = neighbourMAC(q.ip)
	}
	a.tell(q)
}

// discoveryChange is a WS-Discovery or mDNS announcement: Hello, ProbeMatch or Bye.
type discoveryChange struct {
	change  onvif.Change
	ip, mac string
}

func (q discoveryChange) serve(r *registry) result {
	f := q.change.Device
	key := strings.ToLower(f.EndpointRef)
	if key == "" {
		key = f.XAddr
	}
	rec, known := r.found[key]
	switch q.change.Kind {
	case onvif.Gone:
		if !known || !rec.present {
			return result{}
		}
		rec.present = false
		r.a.log.Info("camera left the network", "camera_id", rec.CameraID, "xaddr", f.XAddr)
	default:
		if !known {
			rec = &discovered{CameraID: discoveredCameraID(f, q.mac), EndpointRef: f.EndpointRef, MAC: q.mac}
			r.found[key] = rec
			r.a.log.Info("camera discovered",
				"camera_id", rec.CameraID, "xaddr", f.XAddr, "name", f.Name, "hardware", f.Hardware)
		}
		if known && rec.XAddr != "" && rec.XAddr != f.XAddr && !r.mayFollow(rec, q.mac) {
			r.holdMove(rec, f.XAddr, q.mac)
			break
		}
		moved := known && rec.XAddr != "" && rec.XAddr != f.XAddr
		oldXAddr := rec.XAddr
		rec.XAddr, rec.Name, rec.Hardware, rec.IP, rec.LastSeen, rec.present = f.XAddr, f.Name, f.Hardware, q.ip,
			time.Now().UTC(), true
		if moved {
			// A "moved?" stays until the device is followed or the owner answers it: an impostor
			// and the real camera taking turns must not make the warning blink.
			rec.MovedTo, rec.MovedMAC = "", ""
			r.a.log.Info("camera moved", "camera_id", rec.CameraID, "from", oldXAddr, "to", f.XAddr)
			r.followMove(rec.CameraID, oldXAddr, f.XAddr)
		}
	}
	r.saveDiscovered()
	r.reconcile()
	return result{}
}

// followMove points an added camera at its device's new address when the camera was given
// by that device's ONVIF URL: a DHCP renewal must not cost the owner a visit. Only called once
// mayFollow has said the announcer is the pinned device.
func (r *registry) followMove(id, oldXAddr, newXAddr string) {
	rec, ok := r.added[id]
	if !ok || rec.URL != oldXAddr {
		return
	}
	rec.URL, rec.Device.IP, rec.Device.ONVIF = newXAddr, hostOf(newXAddr), newXAddr
	// A failed write takes the camera back to its old address (recordwriter.go).
	if err := r.putCamera(rec); err != nil {
		r.a.log.Error("store: following a moved camera", "camera_id", id, "err", err)
		return
	}
	r.added[id] = rec
}

// discoveredWanted adds the present, not yet added discovered devices to want.
func (r *registry) discoveredWanted(want map[string]wantedCamera) {
	for _, d := range r.found {
		if !d.present {
			continue
		}
		if _, taken := want[d.CameraID]; taken {
			continue
		}
		name := d.Name
		if name == "" {
			name = strings.TrimSpace(d.Hardware + " " + d.IP)
		}
		want[d.CameraID] = wantedCamera{
			conf:   CameraConfig{ID: d.CameraID, Name: name, URL: d.XAddr, Audio: true},
			device: DeviceInfo{Model: d.Hardware, IP: d.IP, MAC: d.MAC, ONVIF: onvifOnly(d.XAddr)},
			origin: originDiscovered,
		}
	}
}

// discoveredByID finds a discovered device by the camera_id it was given.
func (r *registry) discoveredByID(id string) (*discovered, bool) {
	for _, d := range r.found {
		if d.CameraID == id {
			c := *d
			return &c, true
		}
	}
	return nil, false
}

// DiscoverNow sends probes at once and reports the devices known a moment later.
func (a *Agent) DiscoverNow(ctx context.Context, wait time.Duration) ([]onvif.Found, error) {
	d := a.discoverer.Load()
	cfg := a.config()
	if d == nil {
		return onvif.Discover(ctx, onvif.DiscovererConfig{Interfaces: cfg.Discovery.Interfaces, Logger: a.log}, wait)
	}
	if err := d.Probe(ctx); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(wait):
	}
	return d.Devices(), nil
}

// runMDNS browses for cameras' DNS-SD services every interval. An _onvif._tcp service is an ONVIF
// device like a WS-Discovery find; _rtsp._tcp and _axis-video._tcp are cameras reached by address,
// whose stream path is probed once they are given credentials. A service gone from two browses
// in a row leaves the registry.
func (a *Agent) runMDNS(ctx context.Context, interfaces []string, interval time.Duration) {
	missed := map[string]int{}
	for {
		services, err := mdns.Browse(ctx, mdns.Config{Interfaces: interfaces, Logger: a.log.With("part", "mdns")},
			3*time.Second)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("mDNS browse failed", "err", err)
		}
		seen := map[string]bool{}
		for _, svc := range services {
			if len(svc.IPv4) == 0 {
				continue
			}
			ip := svc.IPv4[0].String()
			var xaddr string
			switch svc.Service {
			case "_onvif._tcp":
				xaddr = "http://" + net.JoinHostPort(ip, strconv.Itoa(svc.Port)) + "/onvif/device_service"
			case "_rtsp._tcp", "_axis-video._tcp":
				port := svc.Port
				if svc.Service == "_axis-video._tcp" {
					port = 554 // the service announces the web port; Axis streams on 554
				}
				xaddr = "rtsp://" + net.JoinHostPort(ip, strconv.Itoa(port))
			default:
				continue
			}
			key := "mdns:" + strings.ToLower(svc.Instance)
			seen[key] = true
			missed[key] = 0
			a.onDiscovery(onvif.Change{Kind: onvif.Appeared, Device: onvif.Found{
				EndpointRef: key, XAddr: xaddr, Name: svc.Instance, Addr: svc.IPv4[0],
			}})
		}
		for key := range missed {
			if !seen[key] {
				if missed[key]++; missed[key] == 2 {
					a.onDiscovery(onvif.Change{Kind: onvif.Gone, Device: onvif.Found{EndpointRef: key}})
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// onvifOnly keeps an address only if it is an ONVIF device service (mDNS also finds plain RTSP
// cameras, whose address is an rtsp:// URL).
func onvifOnly(addr string) string {
	if isONVIFURL(addr) {
		return addr
	}
	return ""
}
