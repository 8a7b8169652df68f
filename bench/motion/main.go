package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/camgate", "camgate binary")
	cameras := flag.Int("cameras", 1000, "static cameras, one alarm each in the latency phase")
	rate := flag.Int("rate", 100, "alarms per second, both phases")
	sustain := flag.Duration("sustain", 60*time.Second, "length of the sustained phase (0 skips it)")
	sustainCams := flag.Int("sustain-cameras", 20, "cameras sending during the sustained phase")
	hold := flag.Duration("hold", 2*time.Second, "motion.hold given to camgate")
	flag.Parse()
	b := &bench{bin: *bin, cameras: *cameras, rate: *rate, hold: *hold}
	if err := b.run(*sustain, *sustainCams); err != nil {
		log.Fatal(err)
	}
}

type bench struct {
	bin     string
	cameras int
	rate    int
	hold    time.Duration

	mu      sync.Mutex
	arrived map[string]time.Time // "<kind> <media>" -> first arrival
	started int
	stopped int
	posts   int
}

// event is the part of a Flussonic event_sink object the bench reads.
type event struct {
	Event string `json:"event"`
	Media string `json:"media"`
}

func (b *bench) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var evs []event
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err == nil {
		err = json.Unmarshal(body, &evs)
	}
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.posts++
	for _, e := range evs {
		kind := "started"
		switch {
		case strings.HasSuffix(e.Event, "motion_started"):
			b.started++
		case strings.HasSuffix(e.Event, "motion_stopped"):
			b.stopped++
			kind = "stopped"
		default:
			continue
		}
		if _, ok := b.arrived[kind+" "+e.Media]; !ok {
			b.arrived[kind+" "+e.Media] = now
		}
	}
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (b *bench) arrival(kind, media string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.arrived[kind+" "+media]
	return t, ok
}

func (b *bench) counts() (started, stopped, posts int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started, b.stopped, b.posts
}

func camID(i int) string { return fmt.Sprintf("cam%04d", i) }

// media is the stream name camgate gives a camera with gateway_id "bench" and the default
// stream_name template.
func media(i int) string { return "bench-" + camID(i) }

func (b *bench) run(sustain time.Duration, sustainCams int) error {
	b.arrived = map[string]time.Time{}
	dir, err := os.MkdirTemp("", "camgate-bench-motion")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sink := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = sink.Serve(sinkLn) }() // always ErrServerClosed once sink.Close runs
	defer sink.Close()

	smtpAddr, err := freePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "camgate.yaml")
	if err := os.WriteFile(cfg, []byte(b.config(dir, smtpAddr, "http://"+sinkLn.Addr().String()+"/events")),
		0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, "run", "-c", cfg)
	logf, err := os.Create(filepath.Join(dir, "camgate.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", b.bin, err)
	}
	defer func() {
		// Stopping only: how camgate exits is not what this bench measures.
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitDial(smtpAddr, 30*time.Second); err != nil {
		_ = logf.Sync() // best effort: the log only explains the failure below
		out, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("camgate's SMTP server did not come up: %w\n%s", err, out)
	}
	pid := cmd.Process.Pid
	fmt.Printf("camgate pid %d, %d cameras, rss at start %.1f MiB\n", pid, b.cameras, mib(rss(pid)))

	// Phase 1: one alarm per camera at a steady rate; latency = arrival - end of DATA.
	sent := make([]time.Time, b.cameras)
	var failed int
	tick := time.NewTicker(time.Second / time.Duration(b.rate))
	for i := range b.cameras {
		<-tick.C
		t, err := sendAlarm(smtpAddr, camID(i))
		if err != nil {
			failed++
			if failed <= 3 {
				log.Printf("alarm %d: %v", i, err)
			}
			continue
		}
		sent[i] = t
	}
	tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	var lat []time.Duration
	missing := 0
	for i := range b.cameras {
		if sent[i].IsZero() {
			continue
		}
		for {
			if at, ok := b.arrival("started", media(i)); ok {
				lat = append(lat, at.Sub(sent[i]))
				break
			}
			if time.Now().After(deadline) {
				missing++
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	fmt.Printf("latency  alarms=%d delivered=%d send_failed=%d missing=%d p50=%s p90=%s p99=%s max=%s\n",
		b.cameras, len(lat), failed, missing, pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))
	fmt.Printf("rss after latency phase %.1f MiB\n", mib(rss(pid)))

	if sustain <= 0 {
		return nil
	}
	// Phase 2: sustained alarms from a few cameras, round robin, RSS sampled every second.
	fmt.Printf("sustain  %d alarms/s from %d cameras for %s\n", b.rate, sustainCams, sustain)
	var samples []float64
	stopSample := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSample:
				return
			case <-t.C:
				samples = append(samples, mib(rss(pid)))
			}
		}
	}()
	// Several senders so one slow SMTP transaction does not hold the rate down.
	const senders = 4
	var (
		wg          sync.WaitGroup
		sentN, errN int
		cnt         sync.Mutex
	)
	end := time.Now().Add(sustain)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second * senders / time.Duration(b.rate))
			defer t.Stop()
			for k := s; time.Now().Before(end); k += senders {
				<-t.C
				_, err := sendAlarm(smtpAddr, camID(k%sustainCams))
				cnt.Lock()
				if err != nil {
					errN++
				} else {
					sentN++
				}
				cnt.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stopSample)
	sampler.Wait()
	fmt.Printf("sustain  sent=%d failed=%d (%.1f alarms/s)\n", sentN, errN, float64(sentN)/sustain.Seconds())
	printRSS(samples)

	// Everything owed: a start and a stop for every camera that alarmed.
	wantStopped := b.cameras
	wait := time.Now().Add(b.hold + 30*time.Second)
	for time.Now().Before(wait) {
		if _, stopped, _ := b.counts(); stopped >= wantStopped {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	started, stopped, posts := b.counts()
	fmt.Printf("events   started=%d stopped=%d (want >=%d each) posts=%d\n", started, stopped, wantStopped, posts)
	fmt.Printf("rss at end %.1f MiB, data dir %.1f KiB\n",
		mib(rss(pid)), float64(dirSize(filepath.Join(dir, "data")))/1024)
	return nil
}

func (b *bench) config(dir, smtpAddr, sinkURL string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "gateway_id: bench\ndata_dir: %s\nlog: {level: warn}\nweb: {listen: \"\"}\n",
		filepath.Join(dir, "data"))
	sb.WriteString("discovery: {onvif: false, mdns: false}\n")
	fmt.Fprintf(&sb, "smtp: {listen: %q}\n", smtpAddr)
	fmt.Fprintf(&sb, "motion: {hold: %s}\n", b.hold)
	fmt.Fprintf(&sb, "flussonic:\n  events:\n    - {url: %q}\n", sinkURL)
	sb.WriteString("cameras:\n")
	for i := range b.cameras {
		fmt.Fprintf(&sb, "  - {id: %s, url: 'rtsp://127.0.0.1:9/x', enabled: false}\n", camID(i))
	}
	return sb.String()
}

// sendAlarm sends one Hikvision-style alarm mail and returns the moment the DATA terminator was
// about to be written.
func sendAlarm(addr, cam string) (time.Time, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return time.Time{}, err
	}
	defer c.Close()
	if err := c.Mail("camera@alarm.local"); err != nil {
		return time.Time{}, err
	}
	if err := c.Rcpt(cam + "@camgate.local"); err != nil {
		return time.Time{}, err
	}
	w, err := c.Data()
	if err != nil {
		return time.Time{}, err
	}
	msg := "From: camera@alarm.local\r\nTo: " + cam + "@camgate.local\r\nSubject: Motion Detection Alarm\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nAlarm Event: Motion Detection\r\nAlarm Input Channel No.: 1\r\n"
	if _, err := io.WriteString(w, msg); err != nil {
		return time.Time{}, err
	}
	t := time.Now()
	if err := w.Close(); err != nil {
		return t, err
	}
	return t, c.Quit()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitDial(addr string, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			// Read the greeting so the server is really serving, not just bound.
			_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // fails only on a closed conn, as the read would
			_, err = bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(end) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	return d[min(max(i-1, 0), len(d)-1)].Round(10 * time.Microsecond)
}

// rss reads VmRSS of a process in bytes.
func rss(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// printRSS summarises the samples: first and last 10 s, and the peak, so growth shows as a
// last-minus-first difference rather than a noisy single sample.
func printRSS(s []float64) {
	if len(s) == 0 {
		fmt.Println("rss      no samples")
		return
	}
	k := min(10, len(s)/2+1)
	mean := func(x []float64) float64 {
		var t float64
		for _, v := range x {
			t += v
		}
		return t / float64(len(x))
	}
	first, last := mean(s[:k]), mean(s[len(s)-k:])
	fmt.Printf("rss      samples=%d first10s=%.1f MiB last10s=%.1f MiB peak=%.1f MiB growth=%+.1f MiB\n",
		len(s), first, last, slices.Max(s), last-first)
}

func dirSize(dir string) int64 {
	var n int64
	// The walk skips what it cannot read, so it returns no error.
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}
