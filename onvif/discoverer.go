package onvif

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/camgate/camgate/internal/lan"
	"golang.org/x/net/ipv4"
)

// DiscovererConfig configures WS-Discovery.
type DiscovererConfig struct {
	// Interfaces to probe and listen on; empty means every up, multicast-capable interface with
	// an IPv4 address except the one holding the default route (the WAN side of a gateway).
	Interfaces []string
	// Group is the multicast group and port, DefaultDiscoveryGroup when empty. Tests use another.
	Group string
	// ProbeInterval is the time between probe rounds in Run (default 5 minutes).
	ProbeInterval time.Duration
	// Expire forgets a device not heard from for this long (default 3 probe intervals);
	// cameras that lose power never say Bye.
	Expire time.Duration
	Logger *slog.Logger
}

// ChangeKind says what happened to a device.
type ChangeKind int

const (
	Appeared ChangeKind = iota + 1 // first heard of (ProbeMatch or Hello)
	Updated                        // its XAddr, scopes or address changed
	Gone                           // said Bye or was not heard from for Expire
)

func (k ChangeKind) String() string {
	switch k {
	case Appeared:
		return "appeared"
	case Updated:
		return "updated"
	case Gone:
		return "gone"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change is one event of Discoverer.Updates.
type Change struct {
	Kind   ChangeKind
	Device Found
}

// Discoverer finds ONVIF devices by WS-Discovery: it probes every configured interface now and
// then, and listens all the time for replies and for Hello and Bye announcements.
type Discoverer struct {
	cfg   DiscovererConfig
	group *net.UDPAddr
	log   *slog.Logger

	updates chan Change
	ready   chan struct{} // closed once sockets are open
	probeMu sync.Mutex
	probers []*prober // set before ready is closed

	mu       sync.Mutex
	devices  map[string]*seen
	runErr   error
	stopOnce sync.Once
}

type seen struct {
	found    Found
	lastSeen time.Time
}

type prober struct {
	ifi  *net.Interface
	conn *net.UDPConn
	pc   *ipv4.PacketConn
}

// NewDiscoverer checks the configuration; sockets are opened by Run.
func NewDiscoverer(cfg DiscovererConfig) (*Discoverer, error) {
	if cfg.Group == "" {
		cfg.Group = DefaultDiscoveryGroup
	}
	group, err := net.ResolveUDPAddr("udp4", cfg.Group)
	if err != nil || !group.IP.IsMulticast() {
		return nil, fmt.Errorf("onvif: discovery group %q: want an IPv4 multicast host:port", cfg.Group)
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 5 * time.Minute
	}
	if cfg.Expire <= 0 {
		cfg.Expire = 3 * cfg.ProbeInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Discoverer{
		cfg:     cfg,
		group:   group,
		log:     cfg.Logger,
		updates: make(chan Change, 256),
		ready:   make(chan struct{}),
		devices: map[string]*seen{},
	}, nil
}

// Updates delivers appeared, updated and gone devices. It is buffered; when the reader falls
// behind, changes are dropped (and logged), and Devices stays authoritative.
func (d *Discoverer) Updates() <-chan Change { return d.updates }

// Devices returns the devices currently known, sorted by XAddr.
func (d *Discoverer) Devices() []Found {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Found, 0, len(d.devices))
	for _, s := range d.devices {
		out = append(out, s.found)
	}
	slices.SortFunc(out, func(a, b Found) int { return strings.Compare(a.XAddr, b.XAddr) })
	return out
}

// Run opens the sockets, probes at once and every ProbeInterval, and handles every reply and
// announcement until ctx ends.
func (d *Discoverer) Run(ctx context.Context) error {
	ifaces, err := discoveryInterfaces(d.cfg.Interfaces)
	if err != nil {
		d.fail(err)
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	// Without the group socket there are no Hello/Bye, but probing still works: another
	// WS-Discovery daemon may hold the port without SO_REUSEADDR.
	listener, err := listenMulticast(ctx, d.group)
	if err != nil {
		d.log.Warn("ws-discovery: not listening for Hello and Bye", "err", err)
	} else {
		lpc := ipv4.NewPacketConn(listener)
		joined := 0
		for _, ifi := range ifaces {
			if err := lpc.JoinGroup(ifi, &net.UDPAddr{IP: d.group.IP}); err != nil {
				d.log.Warn("ws-discovery: cannot join group", "interface", ifi.Name, "err", err)
				continue
			}
			joined++
		}
		_ = lpc.SetControlMessage(ipv4.FlagInterface, true)
		if joined == 0 {
			d.log.Warn("ws-discovery: not listening for Hello and Bye: no interface joined the group", "group", d.group.IP)
			listener.Close()
			listener = nil
		} else {
			wg.Add(1)
			go func() { defer wg.Done(); d.readLoop(ctx, lpc, "") }()
		}
	}

	var probers []*prober
	for _, ifi := range ifaces {
		p, err := newProber(ifi)
		if err != nil {
			d.log.Warn("ws-discovery: cannot probe on interface", "interface", ifi.Name, "err", err)
			continue
		}
		probers = append(probers, p)
		wg.Add(1)
		go func() { defer wg.Done(); d.readLoop(ctx, p.pc, ifi.Name) }()
	}
	if len(probers) == 0 && listener == nil {
		err := fmt.Errorf("onvif: ws-discovery: no usable socket on %d interfaces", len(ifaces))
		d.fail(err)
		return err
	}
	go func() {
		<-ctx.Done()
		if listener != nil {
			listener.Close()
		}
		for _, p := range probers {
			p.conn.Close()
		}
	}()
	d.probeMu.Lock()
	d.probers = probers
	d.probeMu.Unlock()
	d.stopOnce.Do(func() { close(d.ready) })
	d.log.Info("ws-discovery: listening", "group", d.group.String(), "interfaces", len(ifaces), "probing", len(probers))

	tick := time.NewTicker(d.cfg.ProbeInterval)
	defer tick.Stop()
	expire := time.NewTicker(min(d.cfg.Expire/3, time.Minute))
	defer expire.Stop()
	_ = d.Probe(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			_ = d.Probe(ctx)
		case <-expire.C:
			d.expire(time.Now())
		}
	}
}

func (d *Discoverer) fail(err error) {
	d.stopOnce.Do(func() {
		d.mu.Lock()
		d.runErr = err
		d.mu.Unlock()
		close(d.ready)
	})
}

// Probe sends a probe round now on every interface: a typed probe for NetworkVideoTransmitter and
// an untyped one, each repeated a few times with jitter (UDP multicast gets lost). It waits for Run
// to have opened the sockets.
func (d *Discoverer) Probe(ctx context.Context) error {
	select {
	case <-d.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.mu.Lock()
	err := d.runErr
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.probeMu.Lock()
	probers := d.probers
	d.probeMu.Unlock()
	msgs := [][]byte{probeMessage(newUUID(), typeNVT), probeMessage(newUUID(), "")}
	var sent int
	var lastErr error
	for round := 0; round < 3; round++ {
		if round > 0 {
			t := time.NewTimer(time.Duration(50+rand.IntN(200)) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		for _, p := range probers {
			for _, m := range msgs {
				if _, err := p.pc.WriteTo(m, nil, d.group); err != nil {
					lastErr = err
					continue
				}
				sent++
			}
		}
	}
	if sent == 0 {
		if lastErr == nil {
			lastErr = errors.New("no interface to probe on")
		}
		return fmt.Errorf("onvif: ws-discovery probe: %w", lastErr)
	}
	return nil
}

func (d *Discoverer) readLoop(ctx context.Context, pc *ipv4.PacketConn, ifname string) {
	buf := make([]byte, maxDatagram)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Debug("ws-discovery: read", "err", err)
			continue
		}
		var from net.IP
		if ua, ok := src.(*net.UDPAddr); ok {
			from = ua.IP
		}
		name := ifname
		if name == "" && cm != nil {
			if ifi, err := net.InterfaceByIndex(cm.IfIndex); err == nil {
				name = ifi.Name
			}
		}
		kind, found, err := parseDiscovery(buf[:n], from)
		if err != nil {
			d.log.Debug("ws-discovery: ignoring datagram", "from", src, "err", err)
			continue
		}
		for _, f := range found {
			f.Interface = name
			switch kind {
			case kindBye:
				d.remove(f.EndpointRef)
			case kindHello, kindProbeMatches:
				d.add(f, time.Now())
			}
		}
	}
}

func (d *Discoverer) add(f Found, now time.Time) {
	if f.XAddr == "" {
		return
	}
	key := endpointKey(f.EndpointRef)
	d.mu.Lock()
	s, ok := d.devices[key]
	var kind ChangeKind
	switch {
	case !ok:
		d.devices[key] = &seen{found: f, lastSeen: now}
		kind = Appeared
	case s.found.XAddr != f.XAddr || !slices.Equal(s.found.Scopes, f.Scopes):
		s.found, s.lastSeen = f, now
		kind = Updated
	default:
		s.lastSeen = now
	}
	d.mu.Unlock()
	if kind != 0 {
		d.log.Debug("ws-discovery: device "+kind.String(), "xaddr", f.XAddr, "endpoint", f.EndpointRef, "name", f.Name)
		d.notify(Change{Kind: kind, Device: f})
	}
}

func (d *Discoverer) remove(ref string) {
	key := endpointKey(ref)
	d.mu.Lock()
	s, ok := d.devices[key]
	delete(d.devices, key)
	d.mu.Unlock()
	if ok {
		d.notify(Change{Kind: Gone, Device: s.found})
	}
}

func (d *Discoverer) expire(now time.Time) {
	var gone []Found
	d.mu.Lock()
	for k, s := range d.devices {
		if now.Sub(s.lastSeen) > d.cfg.Expire {
			gone = append(gone, s.found)
			delete(d.devices, k)
		}
	}
	d.mu.Unlock()
	for _, f := range gone {
		d.notify(Change{Kind: Gone, Device: f})
	}
}

func (d *Discoverer) notify(c Change) {
	select {
	case d.updates <- c:
	default:
		d.log.Warn("ws-discovery: update dropped, reader too slow", "kind", c.Kind.String(), "xaddr", c.Device.XAddr)
	}
}

// Discover probes for timeout and returns what answered; for one-shot scans.
func Discover(ctx context.Context, cfg DiscovererConfig, timeout time.Duration) ([]Found, error) {
	d, err := NewDiscoverer(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		return nil, err
	}
	return d.Devices(), nil
}

// listenMulticast binds the group address and port with SO_REUSEADDR, so that other WS-Discovery
// users on the gateway (and simulated devices in tests) can share the port.
func listenMulticast(ctx context.Context, group *net.UDPAddr) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(ctx, "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("onvif: ws-discovery listen %s: %w", group, err)
	}
	return c.(*net.UDPConn), nil
}

// newProber opens a socket on the interface's first IPv4 address: probes leave by that interface
// and ProbeMatches come back to it by unicast.
func newProber(ifi *net.Interface) (*prober, error) {
	ip, err := lan.InterfaceIPv4(ifi)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, err
	}
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetMulticastInterface(ifi); err != nil {
		c.Close()
		return nil, fmt.Errorf("set multicast interface: %w", err)
	}
	// A hop limit of 1 keeps probes on the LAN segment, as WS-Discovery asks.
	_ = pc.SetMulticastTTL(1)
	// Loopback on so devices on this very host (camgate demo) hear us.
	_ = pc.SetMulticastLoopback(true)
	return &prober{ifi: ifi, conn: c, pc: pc}, nil
}

// discoveryInterfaces resolves configured names, or picks the LAN interfaces.
func discoveryInterfaces(names []string) ([]*net.Interface, error) {
	ifaces, err := lan.MulticastInterfaces(names)
	if err != nil {
		return nil, fmt.Errorf("onvif: %w", err)
	}
	return ifaces, nil
}
