package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/camgate/camgate/mdns"
	"github.com/camgate/camgate/onvif"
)

// discovered is one device as `camgate discover` reports it.
type discovered struct {
	Address  string          `json:"address"`
	Source   string          `json:"source"` // ws-discovery or mdns
	Vendor   string          `json:"vendor,omitempty"`
	Model    string          `json:"model,omitempty"`
	Name     string          `json:"name,omitempty"`
	Serial   string          `json:"serial,omitempty"`
	MAC      string          `json:"mac,omitempty"`
	XAddr    string          `json:"xaddr,omitempty"`
	Endpoint string          `json:"endpoint,omitempty"`
	Services []string        `json:"services,omitempty"` // mDNS service types
	Profiles []onvif.Profile `json:"profiles,omitempty"`
	Error    string          `json:"error,omitempty"`
}

func cmdDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("discover", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 4*time.Second, "how long to listen for answers")
	user := fs.String("user", "", "ONVIF username: with it, each device's profiles and RTSP URIs are read")
	pass := fs.String("password", "", "ONVIF password")
	ifaces := fs.String("interfaces", "",
		"comma-separated interfaces to scan (default: every LAN interface but the default route's)")
	noMDNS := fs.Bool("no-mdns", false, "skip the mDNS browse")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var names []string
	if *ifaces != "" {
		names = strings.Split(*ifaces, ",")
	}
	var (
		wg       sync.WaitGroup
		found    []onvif.Found
		services []mdns.Service
		wsErr    error
		mdnsErr  error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		found, wsErr = onvif.Discover(ctx, onvif.DiscovererConfig{Interfaces: names}, *timeout)
	}()
	if !*noMDNS {
		wg.Add(1)
		go func() {
			defer wg.Done()
			services, mdnsErr = mdns.Browse(ctx, mdns.Config{Interfaces: names}, *timeout)
		}()
	}
	wg.Wait()
	if wsErr != nil && (mdnsErr != nil || *noMDNS) {
		return fmt.Errorf("discover: %w", wsErr)
	}
	if wsErr != nil {
		fmt.Fprintln(stderr, "camgate: discover: ws-discovery:", wsErr)
	}
	if mdnsErr != nil {
		fmt.Fprintln(stderr, "camgate: discover: mdns:", mdnsErr)
	}

	out := make([]discovered, len(found))
	var inv sync.WaitGroup
	for i, f := range found {
		out[i] = discovered{Address: f.Addr.String(), Source: "ws-discovery", Name: f.Name, Model: f.Hardware, XAddr: f.XAddr,
			Endpoint: f.EndpointRef}
		if *user == "" {
			continue
		}
		inv.Add(1)
		go func(d *discovered) {
			defer inv.Done()
			d.inventory(ctx, *user, *pass)
		}(&out[i])
	}
	inv.Wait()
	out = append(out, mdnsOnly(services, out)...)
	sort.Slice(out, func(i, j int) bool { return ipLess(out[i].Address, out[j].Address) })
	if *asJSON {
		return writeJSON(stdout, out)
	}
	printDiscovered(stdout, out)
	return nil
}

func (d *discovered) inventory(ctx context.Context, user, pass string) {
	c, err := onvif.NewClient(onvif.ClientConfig{XAddr: d.XAddr, Username: user, Password: pass})
	if err != nil {
		d.Error = err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	dev, err := onvif.Inventory(ctx, c)
	if err != nil {
		d.Error = err.Error()
		return
	}
	d.Vendor, d.Model, d.Serial, d.MAC, d.Profiles = dev.Manufacturer, dev.Model, dev.Serial, dev.MAC, dev.Profiles
}

// mdnsOnly lists the mDNS answers from hosts WS-Discovery did not already report.
func mdnsOnly(services []mdns.Service, seen []discovered) []discovered {
	have := map[string]bool{}
	for _, d := range seen {
		have[d.Address] = true
	}
	byHost := map[string]*discovered{}
	var order []string
	for _, s := range services {
		for _, ip := range s.IPv4 {
			addr := ip.String()
			if have[addr] {
				continue
			}
			d, ok := byHost[addr]
			if !ok {
				d = &discovered{Address: addr, Source: "mdns", Name: s.Instance}
				byHost[addr] = d
				order = append(order, addr)
			}
			d.Services = append(d.Services, fmt.Sprintf("%s:%d", s.Service, s.Port))
		}
	}
	out := make([]discovered, 0, len(order))
	for _, a := range order {
		out = append(out, *byHost[a])
	}
	return out
}

func ipLess(a, b string) bool {
	x, y := net.ParseIP(a).To16(), net.ParseIP(b).To16()
	if x == nil || y == nil {
		return a < b
	}
	return string(x) < string(y)
}

func printDiscovered(w io.Writer, list []discovered) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no devices answered")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tVENDOR\tMODEL\tSERIAL/MAC\tONVIF XADDR")
	for _, d := range list {
		id := d.Serial
		if d.MAC != "" {
			id = strings.TrimPrefix(id+" / "+d.MAC, " / ")
		}
		xaddr := d.XAddr
		if xaddr == "" {
			xaddr = strings.Join(d.Services, " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Address, dash(d.Vendor), dash(d.Model), dash(id), xaddr)
	}
	tw.Flush()
	for _, d := range list {
		if d.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", d.Address, d.Error)
		}
		for _, p := range d.Profiles {
			fmt.Fprintf(w, "%s  profile %s: %s %dx%d  %s\n", d.Address, p.Token, p.Codec, p.Width, p.Height, p.StreamURI)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
