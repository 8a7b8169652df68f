package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/onvif"
)

const childEnv = "CAMGATE_BENCH_IN_NETNS"

// quiet keeps the discoverers' start-up lines out of the figures; warnings still show.
func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func main() {
	n := flag.Int("cameras", 20, "simulated cameras")
	rounds := flag.Int("rounds", 5, "measured rounds (a fresh discoverer each)")
	oneshot := flag.Duration("oneshot", time.Second, "probe window of the one-shot onvif.Discover scan")
	flag.Parse()
	if os.Getenv(childEnv) == "1" {
		if err := child(*n, *rounds, *oneshot); err != nil {
			log.Fatal(err)
		}
		return
	}
	if _, err := exec.LookPath("ip"); err != nil {
		log.Fatal("the ip command is needed: install the Debian package iproute2")
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Run(); err != nil {
		log.Fatalf("in a network namespace (needs root or CAP_SYS_ADMIN): %v", err)
	}
}

func child(n, rounds int, oneshot time.Duration) error {
	// Refuse to send anything unless this really is a fresh namespace holding only loopback.
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		return fmt.Errorf("not in a fresh network namespace (interfaces %v): refusing to send multicast", ifs)
	}
	addrs := make([]string, n)
	setup := [][]string{{"link", "set", "lo", "up"}, {"link", "set", "lo", "multicast", "on"},
		{"route", "add", "224.0.0.0/4", "dev", "lo"}}
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.77.0.%d", 10+i)
		setup = append(setup, []string{"addr", "add", addrs[i] + "/24", "dev", "lo"})
	}
	for _, args := range setup {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const group = "239.255.255.250:3702"
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, a := range addrs {
		dev, err := onvifdev.New(onvifdev.Config{
			Addr: a + ":80", Manufacturer: "Hikvision", Model: "DS-2CD2043G2-I", MAC: fmt.Sprintf("02:77:00:00:00:%02x", i),
			RTSPURL: "rtsp://" + a + ":554/Streaming/Channels/101", SubRTSPURL: "rtsp://" + a + ":554/Streaming/Channels/102",
			Auth: onvifdev.AuthWSSecurity, Username: "admin", Password: "secret",
			DiscoveryGroup: group, DiscoveryIP: a,
		})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dev.Run(ctx); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "camera %s: %v\n", a, err)
			}
		}()
	}
	// Let the cameras' Hello go by: the discoverer must find them by probing, as at boot.
	time.Sleep(time.Second)

	fmt.Printf("%d cameras, %d rounds\n", n, rounds)
	var totals []time.Duration
	for r := range rounds {
		found, total, err := round(ctx, n, group)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		fmt.Printf("round %d: all %d found after %s, full inventory after %s\n",
			r, n, found.Round(time.Millisecond), total.Round(time.Millisecond))
		totals = append(totals, total)
	}
	slices.Sort(totals)
	fmt.Printf("RESULT event-driven: full inventory of %d cameras: median %s, worst %s "+
		"(target < 3s; go2rtc waits 5s per probe)\n",
		n, totals[len(totals)/2].Round(time.Millisecond), totals[len(totals)-1].Round(time.Millisecond))

	// The one-shot scan (as `camgate discover` does) waits out its probe window, then
	// inventories everything it heard in parallel.
	start := time.Now()
	found, err := onvif.Discover(ctx, onvif.DiscovererConfig{Interfaces: []string{"lo"}, Group: group, Logger: quiet()},
		oneshot)
	if err != nil {
		return fmt.Errorf("one-shot discover: %w", err)
	}
	results := make(chan error, len(found))
	for _, f := range found {
		go func() { results <- inventory(ctx, f.XAddr) }()
	}
	for range found {
		if err := <-results; err != nil {
			return err
		}
	}
	fmt.Printf("RESULT one-shot onvif.Discover(%s) + Inventory: %d of %d cameras in %s\n",
		oneshot, len(found), n, time.Since(start).Round(time.Millisecond))
	return nil
}

// round starts a discoverer and inventories every camera as soon as it appears; it returns when
// all n have complete inventories.
func round(parent context.Context, n int, group string) (allFound, total time.Duration, err error) {
	ctx, cancel := context.WithTimeout(parent, 60*time.Second)
	defer cancel()
	start := time.Now()
	d, err := onvif.NewDiscoverer(onvif.DiscovererConfig{Interfaces: []string{"lo"}, Group: group,
		ProbeInterval: time.Hour, Logger: quiet()})
	if err != nil {
		return 0, 0, err
	}
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := d.Run(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "discoverer: %v\n", err)
		}
	}()
	defer func() { cancel(); <-runDone }()

	results := make(chan error, n)
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case c := <-d.Updates():
			if c.Kind != onvif.Appeared || seen[c.Device.EndpointRef] {
				continue
			}
			seen[c.Device.EndpointRef] = true
			go func(xaddr string) { results <- inventory(ctx, xaddr) }(c.Device.XAddr)
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("found %d of %d cameras: %w", len(seen), n, ctx.Err())
		}
	}
	allFound = time.Since(start)
	for range n {
		if err := <-results; err != nil {
			return 0, 0, err
		}
	}
	return allFound, time.Since(start), nil
}

func inventory(ctx context.Context, xaddr string) error {
	c, err := onvif.NewClient(onvif.ClientConfig{XAddr: xaddr, Username: "admin", Password: "secret"})
	if err != nil {
		return err
	}
	dev, err := onvif.Inventory(ctx, c)
	if err != nil {
		return fmt.Errorf("inventory %s: %w", xaddr, err)
	}
	if dev.Manufacturer == "" || len(dev.Profiles) < 2 || dev.MainStream == "" || dev.SubStream == "" {
		return fmt.Errorf("inventory %s incomplete: %+v", xaddr, dev)
	}
	return nil
}
