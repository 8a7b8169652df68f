package onvif

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grandcat/zeroconf"
)

// DefaultMDNSServices are the DNS-SD service types cameras announce.
var DefaultMDNSServices = []string{"_rtsp._tcp", "_onvif._tcp", "_axis-video._tcp", "_http._tcp"}

// MDNSConfig configures BrowseMDNS.
type MDNSConfig struct {
	// Interfaces as for DiscovererConfig: empty means every LAN interface.
	Interfaces []string
	// Services to browse; DefaultMDNSServices when empty. _http._tcp answers are kept only when
	// they look like a camera (printers and NAS boxes announce it too).
	Services []string
	Logger   *slog.Logger
}

// MDNSService is one DNS-SD instance found.
type MDNSService struct {
	Instance string // e.g. "AXIS M3045-V - ACCC8E012345"
	Service  string // e.g. "_axis-video._tcp"
	Host     string // e.g. "axis-accc8e012345.local."
	Port     int
	IPv4     []net.IP
	Text     []string
}

// BrowseMDNS browses the service types for timeout and returns what answered, deduplicated by
// instance and service. It binds UDP 5353 on the multicast wildcard address with SO_REUSEADDR
// (Go sets it for multicast binds), so it coexists with avahi-daemon or umdns on the gateway.
func BrowseMDNS(ctx context.Context, cfg MDNSConfig, timeout time.Duration) ([]MDNSService, error) {
	ifaces, err := discoveryInterfaces(cfg.Interfaces)
	if err != nil {
		return nil, err
	}
	services := cfg.Services
	if len(services) == 0 {
		services = DefaultMDNSServices
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	sel := make([]net.Interface, len(ifaces))
	for i, ifi := range ifaces {
		sel[i] = *ifi
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		mu   sync.Mutex
		out  = map[string]MDNSService{}
		wg   sync.WaitGroup
		errs []error
	)
	// One resolver per service type: a resolver's receive loop is per Browse, and two loops on
	// one socket would steal each other's answers.
	for _, svc := range services {
		r, err := zeroconf.NewResolver(zeroconf.SelectIfaces(sel), zeroconf.SelectIPTraffic(zeroconf.IPv4))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", svc, err))
			continue
		}
		entries := make(chan *zeroconf.ServiceEntry, 16)
		if err := r.Browse(ctx, svc, "local.", entries); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", svc, err))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range entries {
				s := MDNSService{Instance: unescapeInstance(e.Instance), Service: e.Service, Host: e.HostName,
					Port: e.Port, IPv4: e.AddrIPv4, Text: e.Text}
				if svc == "_http._tcp" && !looksLikeCamera(s) {
					continue
				}
				mu.Lock()
				out[s.Service+"\x00"+s.Instance] = s
				mu.Unlock()
			}
		}()
	}
	if len(errs) == len(services) {
		return nil, fmt.Errorf("onvif: mdns: %v", errs)
	}
	for _, e := range errs {
		log.Warn("onvif: mdns browse", "err", e)
	}
	<-ctx.Done()
	wg.Wait()
	list := make([]MDNSService, 0, len(out))
	for _, s := range out {
		list = append(list, s)
	}
	slices.SortFunc(list, func(a, b MDNSService) int {
		return strings.Compare(a.Service+a.Instance, b.Service+b.Instance)
	})
	return list, nil
}

// unescapeInstance undoes DNS label escaping ("AXIS\ M3045" -> "AXIS M3045").
func unescapeInstance(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var cameraWords = []string{"camera", "cam", "ipc", "nvr", "dvr", "onvif", "axis", "hikvision", "dahua", "amcrest",
	"reolink", "uniview", "foscam", "vivotek", "hanwha", "wisenet", "mobotix", "bosch", "eltex", "imou", "ezviz"}

func looksLikeCamera(s MDNSService) bool {
	hay := strings.ToLower(s.Instance + " " + s.Host + " " + strings.Join(s.Text, " "))
	for _, w := range cameraWords {
		if strings.Contains(hay, w) {
			return true
		}
	}
	return false
}
