package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/lan"
	"golang.org/x/net/dns/dnsmessage"
)

// DefaultServices are the DNS-SD service types cameras announce.
var DefaultServices = []string{"_rtsp._tcp", "_onvif._tcp", "_axis-video._tcp", "_http._tcp"}

// Config configures Browse.
type Config struct {
	// Interfaces to browse on; empty means every LAN interface (lan.MulticastInterfaces).
	Interfaces []string
	// Services to browse; DefaultServices when empty. _http._tcp answers are kept only when
	// they look like a camera (printers and NAS boxes announce it too).
	Services []string
	Logger   *slog.Logger
}

// Service is one DNS-SD instance found.
type Service struct {
	Instance string // e.g. "AXIS M3045-V - ACCC8E012345"
	Service  string // e.g. "_axis-video._tcp"
	Host     string // e.g. "axis-accc8e012345.local."
	Port     int
	IPv4     []net.IP
	Text     []string
}

// Browse browses the service types for timeout and returns the instances that answered
// with a port and an IPv4 address, sorted by service and instance.
//
// It is a small DNS-SD querier of its own rather than a library: the one it replaced pulled a
// whole DNS implementation into a router binary that must fit in flash. Per interface it binds
// 224.0.0.251:5353 with SO_REUSEADDR and SO_REUSEPORT, so it coexists with avahi-daemon or umdns
// on the gateway, sends PTR queries three times during timeout, asks for the SRV and A records
// the answers left out, and joins what every response carried when the time is up.
func Browse(ctx context.Context, cfg Config, timeout time.Duration) ([]Service, error) {
	ifaces, err := lan.MulticastInterfaces(cfg.Interfaces)
	if err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}
	services := cfg.Services
	if len(services) == 0 {
		services = DefaultServices
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var (
		browsed []string
		ptrs    []dnsmessage.Question
	)
	for _, svc := range services {
		svc = strings.TrimSuffix(strings.TrimSuffix(svc, "."), ".local")
		name, err := dnsmessage.NewName(svc + ".local.")
		if svc == "" || err != nil {
			return nil, fmt.Errorf("mdns: service type %q: want a name like _rtsp._tcp", svc)
		}
		browsed = append(browsed, svc)
		ptrs = append(ptrs, dnsmessage.Question{Name: name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET})
	}
	queries, err := buildMDNSQueries(ptrs)
	if err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		conns []*mdnsConn
		errs  []error
	)
	for _, ifi := range ifaces {
		c, err := listenMDNS(ctx, ifi)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conns = append(conns, c)
	}
	if len(conns) == 0 {
		return nil, fmt.Errorf("mdns: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		log.Warn("mdns: interface left out", "err", err)
	}

	var (
		mu    sync.Mutex
		state = newMDNSState(browsed)
		wg    sync.WaitGroup
	)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.read(log, func(recs []mdnsRecord) {
				mu.Lock()
				state.add(recs)
				mu.Unlock()
			})
		}()
	}
	send := func(msgs [][]byte) {
		for _, c := range conns {
			for _, m := range msgs {
				if err := c.send(m); err != nil {
					log.Debug("mdns: send", "interface", c.ifi.Name, "err", err)
				}
			}
		}
	}
	for _, step := range mdnsSchedule(timeout) {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(step.at)):
		}
		if ctx.Err() != nil {
			break
		}
		if !step.followUp {
			send(queries)
			continue
		}
		mu.Lock()
		qs := state.followUps()
		mu.Unlock()
		msgs, err := buildMDNSQueries(qs)
		if err != nil {
			log.Debug("mdns: follow-up query", "err", err)
		}
		send(msgs)
	}
	<-ctx.Done()
	for _, c := range conns {
		c.close()
	}
	wg.Wait()
	return state.results(), nil
}

type mdnsStep struct {
	at       time.Time
	followUp bool
}

// mdnsSchedule spreads three PTR rounds over the browse, each with a follow-up for missing
// records a little later. The jitter (RFC 6762 §5.2 asks for 20-120 ms before the first query)
// keeps gateways that start together from querying in step.
func mdnsSchedule(timeout time.Duration) []mdnsStep {
	const rounds = 3
	start := time.Now()
	period := timeout / rounds
	jitter := min(100*time.Millisecond, period/4)
	gap := min(400*time.Millisecond, period/2)
	var steps []mdnsStep
	for i := range rounds {
		at := start.Add(time.Duration(i) * period)
		if jitter > 0 {
			at = at.Add(min(20*time.Millisecond, jitter) + rand.N(jitter))
		}
		steps = append(steps, mdnsStep{at: at}, mdnsStep{at: at.Add(gap), followUp: true})
	}
	return steps
}

var cameraWords = []string{"camera", "cam", "ipc", "nvr", "dvr", "onvif", "axis", "hikvision", "dahua", "amcrest",
	"reolink", "uniview", "foscam", "vivotek", "hanwha", "wisenet", "mobotix", "bosch", "eltex", "imou", "ezviz"}

func looksLikeCamera(s Service) bool {
	hay := strings.ToLower(s.Instance + " " + s.Host + " " + strings.Join(s.Text, " "))
	for _, w := range cameraWords {
		if strings.Contains(hay, w) {
			return true
		}
	}
	return false
}
