package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	counts   []int
	window   time.Duration
	storms   []time.Duration
	stormMax time.Duration
	ramp     int
	dir      string
	load     load
}

func main() {
	var o options
	var counts, storms string
	var snapshotBytes int
	flag.StringVar(&counts, "n", "1000", "gateways, or a comma-separated list of counts to run one after another")
	flag.DurationVar(&o.window, "for", 60*time.Second, "steady-state measurement window")
	flag.StringVar(&storms, "storm", "", "broker outages to make after the steady state, e.g. 30s or 30s,5m")
	flag.DurationVar(&o.stormMax, "storm-max", 10*time.Minute,
		"give up waiting for the fleet this long after the broker's return")
	flag.IntVar(&o.ramp, "ramp", 200, "gateways started per second")
	flag.StringVar(&o.dir, "dir", "", "where the outboxes and the broker's files go (default /dev/shm, else the temp dir)")
	flag.IntVar(&o.load.cameras, "cameras", 4, "cameras per gateway")
	flag.DurationVar(&o.load.telemetryInterval, "telemetry", 60*time.Second, "telemetry_interval")
	flag.DurationVar(&o.load.stateRefresh, "state", time.Minute,
		"how often each camera's state is queued (the agent's stateRefresh)")
	flag.Float64Var(&o.load.motionPerHour, "motion", 6, "motion episodes per camera per hour")
	flag.DurationVar(&o.load.motionLength, "motion-length", 20*time.Second, "time from motion_started to motion_stopped")
	flag.IntVar(&snapshotBytes, "snapshot", 30_000, "bytes of the alarm JPEG retained per episode (0 = no snapshots)")
	flag.BoolVar(&o.load.seedSnapshots, "seed-snapshots", true,
		"start with a retained snapshot per camera, as a broker holds after a day of alarms")
	flag.Parse()

	for f := range strings.SplitSeq(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-n %q: want positive counts", counts)
		}
		o.counts = append(o.counts, n)
	}
	if storms != "" {
		for f := range strings.SplitSeq(storms, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil {
				log.Fatalf("-storm %q: %v", storms, err)
			}
			o.storms = append(o.storms, d)
		}
	}
	if snapshotBytes > 0 {
		o.load.snapshot = jpegStandIn(snapshotBytes)
	}
	if o.dir == "" {
		o.dir = os.TempDir()
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			o.dir = "/dev/shm"
		}
	}
	if err := raiseFileLimit(); err != nil {
		log.Printf("warning: %v", err)
	}
	printMachine(o)
	var steady []steadyRow
	var storm []stormRow
	for _, n := range o.counts {
		s, st, err := runFleet(n, o)
		if err != nil {
			log.Fatalf("N=%d: %v", n, err)
		}
		steady = append(steady, s)
		storm = append(storm, st...)
	}
	printSteady(steady)
	if len(storm) > 0 {
		printStorm(storm)
	}
}

// jpegStandIn is incompressible bytes with a JPEG's start and end markers: MQTT does not
// compress, so only the size matters to the broker.
func jpegStandIn(n int) []byte {
	b := make([]byte, max(n, 4))
	for i := range b {
		b[i] = byte(i*7919 + i>>8)
	}
	copy(b, []byte{0xff, 0xd8})
	copy(b[len(b)-2:], []byte{0xff, 0xd9})
	return b[:n]
}

// raiseFileLimit lets this process and mosquitto (which inherits the limit) hold a socket and a
// database per gateway, and mosquitto a socket per client.
func raiseFileLimit() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	want := uint64(1 << 20)
	if l.Max < want {
		l.Max = want
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		// Not root: keep the hard limit we have.
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
		l.Cur = l.Max
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err2 != nil {
			return fmt.Errorf("open-file limit: %w", err2)
		}
		return fmt.Errorf("open-file limit stays at %d: %w", l.Max, err)
	}
	return nil
}

func printMachine(o options) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("fleet bench: %s, %d cores, GOMAXPROCS %d, load average %s",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), load)
	fmt.Printf("per gateway: %d cameras, telemetry every %v (QoS 0), state every %v, %.1f motion episodes/camera/hour "+
		"(%v long), snapshot %d B, seeded snapshots %v; outboxes in %s\n\n",
		o.load.cameras, o.load.telemetryInterval, o.load.stateRefresh, o.load.motionPerHour, o.load.motionLength,
		len(o.load.snapshot), o.load.seedSnapshots, o.dir)
}

type fleet struct {
	gws     []*gateway
	clients chan error
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// waitAll polls until cond holds for every gateway or timeout passes, and says how many held.
func (f *fleet) count(cond func(*gateway) bool) int {
	n := 0
	for _, g := range f.gws {
		if cond(g) {
			n++
		}
	}
	return n
}

func (f *fleet) waitAll(timeout time.Duration, cond func(*gateway) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		n := f.count(cond)
		if n == len(f.gws) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d after %v", n, len(f.gws), timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// events returns how many events each gateway has queued so far, and their sum.
func (f *fleet) events() (map[string]int64, int64) {
	per := make(map[string]int64, len(f.gws))
	var sum int64
	for _, g := range f.gws {
		per[g.id] = g.events.Load()
		sum += per[g.id]
	}
	return per, sum
}

func (f *fleet) depth() (n int) {
	for _, g := range f.gws {
		n += g.depth()
	}
	return n
}

func online(g *gateway) bool  { return g.mqtt.Connected() }
func drained(g *gateway) bool { return g.mqtt.Connected() && g.depth() == 0 }

// shutdown ends every gateway (each says offline to the broker) and closes its outbox.
func (f *fleet) shutdown() {
	f.stop()
	for range f.gws {
		if err := <-f.clients; err != nil {
			log.Printf("gateway client: %v", err)
		}
	}
	f.wg.Wait()
	for _, g := range f.gws {
		g.db.Close()
	}
}

func runFleet(n int, o options) (steadyRow, []stormRow, error) {
	dir, err := os.MkdirTemp(o.dir, "camgate-fleet-")
	if err != nil {
		return steadyRow{}, nil, err
	}
	defer os.RemoveAll(dir)
	b, err := newBroker(dir)
	if err != nil {
		return steadyRow{}, nil, err
	}
	if err := b.start(); err != nil {
		return steadyRow{}, nil, err
	}
	defer b.stop()
	k, err := newCounter(b.addr())
	if err != nil {
		return steadyRow{}, nil, err
	}
	defer k.close()

	runtime.GC()
	base := benchMemory()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{clients: make(chan error, n), stop: cancel}
	defer func() {
		if f.stop != nil {
			f.shutdown()
		}
	}()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(max(o.ramp, 1)))
	for i := range n {
		g, err := newGateway(i, dir, "mqtt://"+b.addr(), o.load)
		if err != nil {
			return steadyRow{}, nil, err
		}
		f.gws = append(f.gws, g)
		f.wg.Go(func() { g.run(ctx, f.clients) })
		<-tick.C
	}
	tick.Stop()
	if err := f.waitAll(10*time.Minute, drained); err != nil {
		return steadyRow{}, nil, fmt.Errorf("fleet online and registered: %w", err)
	}
	fmt.Printf("N=%d: all online and registered %.1f s after the first started\n", n, time.Since(start).Seconds())
	time.Sleep(5 * time.Second)

	row := steadyRow{n: n, window: o.window}
	c0, p0 := k.read(), must(b.sample())
	t0 := time.Now()
	time.Sleep(o.window)
	c1, p1 := k.read(), must(b.sample())
	elapsed := time.Since(t0).Seconds()
	row.appMsgs = float64(c1.msgs-c0.msgs) / elapsed
	row.appBytes = float64(c1.bytes-c0.bytes) / elapsed
	row.pktIn = (c1.sys["messages/received"] - c0.sys["messages/received"]) / elapsed
	row.bytesIn = (c1.sys["bytes/received"] - c0.sys["bytes/received"]) / elapsed
	row.bytesOut = (c1.sys["bytes/sent"] - c0.sys["bytes/sent"]) / elapsed
	row.brokerCPU = float64(p1.cpuTicks-p0.cpuTicks) / userHZ / elapsed * 100
	row.brokerRSS = p1.rssBytes
	runtime.GC()
	mem := benchMemory()
	row.goBytesPerGW = float64(mem.goBytes-base.goBytes) / float64(n)
	row.rssPerGW = float64(mem.rss-base.rss) / float64(n)
	row.goroutinesPerGW = float64(mem.goroutines-base.goroutines) / float64(n)
	if row.retained, row.retainedBytes, err = retained(b.addr()); err != nil {
		return row, nil, err
	}
	fmt.Printf("N=%d steady state: %.1f msgs/s published, %.0f B/s in, broker %.1f%% CPU, %.1f MiB RSS\n",
		n, row.appMsgs, row.bytesIn, row.brokerCPU, float64(row.brokerRSS)/(1<<20))

	var storms []stormRow
	for _, d := range o.storms {
		s, err := storm(f, b, k, d, o.stormMax)
		if err != nil {
			return row, storms, fmt.Errorf("storm %v: %w", d, err)
		}
		storms = append(storms, s)
	}
	f.shutdown()
	f.stop = nil
	return row, storms, nil
}

type memory struct {
	goBytes    uint64 // heap in use + goroutine stacks
	rss        int64
	goroutines int
}

func benchMemory() memory {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p, _ := sampleProc(os.Getpid())
	return memory{goBytes: ms.HeapInuse + ms.StackInuse, rss: p.rssBytes, goroutines: runtime.NumGoroutine()}
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

type steadyRow struct {
	n                        int
	window                   time.Duration
	pktIn, bytesIn, bytesOut float64 // per second, from $SYS (MQTT packets of every type, bytes)
	appMsgs, appBytes        float64 // per second, at the counting subscriber (topic + payload)
	retained                 int
	retainedBytes            int64
	brokerCPU                float64 // percent of one core
	brokerRSS                int64
	goBytesPerGW, rssPerGW   float64
	goroutinesPerGW          float64
}

func printSteady(rows []steadyRow) {
	fmt.Println("\nSteady state (broker side; rates per 1,000 gateways)")
	fmt.Println("| gateways | window | MQTT packets/s in | bytes/s in | bytes/s out | msgs/s at subscriber | retained " +
		"msgs/gw | retained bytes/gw | broker RSS | broker CPU | bench heap+stacks/gw | bench RSS/gw | goroutines/gw |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		per := 1000 / float64(r.n)
		fmt.Printf("| %d | %v | %.1f | %.0f | %.0f | %.1f | %.2f | %.0f | "+
			"%.1f MiB | %.1f %% | %.1f KiB | %.1f KiB | %.1f |\n",
			r.n, r.window, r.pktIn*per, r.bytesIn*per, r.bytesOut*per, r.appMsgs*per,
			float64(r.retained)/float64(r.n), float64(r.retainedBytes)/float64(r.n),
			float64(r.brokerRSS)/(1<<20), r.brokerCPU, r.goBytesPerGW/1024, r.rssPerGW/1024, r.goroutinesPerGW)
	}
}

type stormRow struct {
	n                   int
	outage              time.Duration
	peak, peakAt        int // CONNECTs/s at the broker and the second after the return it happened in
	peak5               int // CONNECTs in the busiest of the 5 s buckets printed after the return
	connects            int // CONNECTs from the return until all drained + 10 s
	series              []int
	online50, online100 time.Duration
	drained100          time.Duration
	queued              int   // outbox messages waiting at the return
	delivered           int64 // messages at the subscriber from the return until all drained
	events              int64 // queued since the start of the bench
	missing, duplicates int64
}

// storm kills the broker with the fleet connected, holds it down for outage, restarts it and
// follows the fleet until every gateway is online with an empty outbox.
func storm(f *fleet, b *broker, k *counter, outage, limit time.Duration) (stormRow, error) {
	n := len(f.gws)
	row := stormRow{n: n, outage: outage}
	killed := time.Now()
	b.kill()
	if err := f.waitAll(time.Minute, func(g *gateway) bool { return !g.mqtt.Connected() }); err != nil {
		return row, fmt.Errorf("gateways noticing the outage: %w", err)
	}
	time.Sleep(time.Until(killed.Add(outage)))
	row.queued = f.depth()
	before := k.read()
	if err := b.start(); err != nil {
		return row, err
	}
	back := time.Now()
	fmt.Printf("N=%d storm %v: broker back, %d messages queued in the outboxes\n", n, outage, row.queued)
	onlineAt := make([]time.Duration, n)
	drainedAt := make([]time.Duration, n)
	left := n
	for left > 0 && time.Since(back) < limit {
		time.Sleep(250 * time.Millisecond)
		now := time.Since(back)
		for i, g := range f.gws {
			if onlineAt[i] == 0 && online(g) {
				onlineAt[i] = now
			}
			if drainedAt[i] == 0 && drained(g) {
				drainedAt[i] = now
				left--
			}
		}
	}
	after := k.read()
	row.delivered = after.msgs - before.msgs
	if left > 0 {
		fmt.Printf("N=%d storm %v: %d gateways not drained %v after the return\n", n, outage, left, limit)
	}
	sorted := slices.Clone(onlineAt)
	slices.Sort(sorted)
	row.online50 = sorted[n/2]
	row.online100 = sorted[n-1]
	row.drained100 = slices.Max(drainedAt)
	if slices.Contains(onlineAt, 0) || slices.Contains(drainedAt, 0) {
		row.online100, row.drained100 = -1, -1
	}
	// Every event queued so far, before, during and after the outage, must reach the
	// subscriber, at least once.
	var queued map[string]int64
	queued, row.events = f.events()
	deadline := time.Now().Add(time.Minute)
	for {
		row.missing, row.duplicates = k.eventStats(queued)
		if row.missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	time.Sleep(10 * time.Second) // let late reconnects show in the series
	row.series = b.connectsBetween(back.Unix(), time.Now().Unix())
	for i, c := range row.series {
		row.connects += c
		if c > row.peak {
			row.peak, row.peakAt = c, i
		}
	}
	for _, c := range bucketSums(row.series, 5) {
		row.peak5 = max(row.peak5, c)
	}
	fmt.Printf("N=%d storm %v: CONNECTs per 5 s after the return: %s\n", n, outage, buckets(row.series, 5))
	return row, nil
}

// bucketSums adds series up in consecutive buckets of width seconds.
func bucketSums(series []int, width int) []int {
	var sums []int
	for i := 0; i < len(series); i += width {
		sum := 0
		for _, c := range series[i:min(i+width, len(series))] {
			sum += c
		}
		sums = append(sums, sum)
	}
	return sums
}

func buckets(series []int, width int) string {
	var parts []string
	for _, sum := range bucketSums(series, width) {
		parts = append(parts, strconv.Itoa(sum))
	}
	return strings.Join(parts, " ")
}

func printStorm(rows []stormRow) {
	fmt.Println("\nStorm (broker killed with every gateway connected, restarted after the outage)")
	fmt.Println("| gateways | outage | peak CONNECT/s (second) | peak CONNECT/s over 5 s | CONNECTs | 50% online |" +
		" all online | all drained | queued at return | msgs delivered | events queued / missing / duplicates |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %v | %d (%d s) | %.1f | %d | %s | %s | %s | %d | %d | %d / %d / %d |\n",
			r.n, r.outage, r.peak, r.peakAt, float64(r.peak5)/5, r.connects,
			secs(r.online50), secs(r.online100), secs(r.drained100),
			r.queued, r.delivered, r.events, r.missing, r.duplicates)
	}
}

func secs(d time.Duration) string {
	if d < 0 {
		return "not all"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
