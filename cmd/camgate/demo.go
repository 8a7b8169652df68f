package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/camgate/camgate/agent"
	"github.com/camgate/camgate/internal/sim"
)

// demoCameras is how many simulated cameras `camgate demo` starts.
const demoCameras = 2

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	verbose := fs.Bool("v", false, "log at debug level")
	keep := fs.Duration("for", 0, "stop by itself after this long (0 = until Ctrl-C)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keep > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *keep)
		defer cancel()
	}
	level := new(slog.LevelVar)
	if *verbose {
		level.Set(slog.LevelDebug)
	}
	log := newLogger(stderr, "text", level)

	dataDir, err := os.MkdirTemp("", "camgate-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dataDir)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var runErr error
	var errOnce sync.Once
	serve := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errOnce.Do(func() { runErr = fmt.Errorf("demo: %s: %w", name, err) })
				cancel()
			}
		}()
	}
	defer wg.Wait()

	server, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0", Logger: log.With("part", "flussonic-stand-in")})
	if err != nil {
		return fmt.Errorf("demo: flussonic stand-in: %w", err)
	}
	serve("flussonic stand-in", server.Run)

	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0", Out: stdout, Logger: log.With("part", "event-sink")})
	if err != nil {
		return fmt.Errorf("demo: event sink: %w", err)
	}
	serve("event sink", sink.Run)

	cfg := agent.DefaultConfig()
	cfg.GatewayID = "demo"
	cfg.DataDir = dataDir
	cfg.Web.Listen = ""
	cfg.SMTP.Listen = ""
	cfg.Discovery.ONVIF, cfg.Discovery.MDNS = false, false
	cfg.Flussonic.Publish = server.URL()
	cfg.Flussonic.Events = []agent.EventSinkConfig{{URL: sink.URL(), Naming: "v22"}}
	for i := 1; i <= demoCameras; i++ {
		cam, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0", Path: "/stream1", Logger: log.With("part", fmt.Sprintf("camera%d", i))})
		if err != nil {
			return fmt.Errorf("demo: camera %d: %w", i, err)
		}
		serve(fmt.Sprintf("camera %d", i), cam.Run)
		c := agent.CameraConfig{ID: fmt.Sprintf("cam%d", i), Name: fmt.Sprintf("Demo camera %d", i), URL: cam.URL(), Audio: true, Enabled: true}
		cfg.Cameras = append(cfg.Cameras, c)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	a := agent.New(agent.Loaded{Config: cfg}, agent.Options{Logger: log.With("part", "agent"), LogLevel: level, Version: version,
		Ready: func(a *agent.Agent) {
			fmt.Fprintf(stdout, "\ncamgate demo: %d simulated cameras relayed to a local Flussonic stand-in at %s\n", demoCameras, server.URL())
			fmt.Fprintln(stdout, "Watch a relayed stream with:")
			for _, c := range cfg.Cameras {
				fmt.Fprintf(stdout, "  ffplay -rtsp_transport tcp %s\n", cfg.PublishURL(c.ID))
			}
			fmt.Fprintf(stdout, "or check it with:\n  ffprobe -rtsp_transport tcp %s\n", cfg.PublishURL(cfg.Cameras[0].ID))
			fmt.Fprintln(stdout, "Motion events print here as the event sink receives them. Ctrl-C stops everything.")
		}})
	serve("agent", a.Run)
	serve("status", func(ctx context.Context) error { return demoStatus(ctx, a, server, stdout) })

	<-ctx.Done()
	cancel()
	wg.Wait()
	return runErr
}

// demoStatus prints what the stand-in received every few seconds, so the demo shows the relay
// working without any other tool.
func demoStatus(ctx context.Context, a *agent.Agent, server *sim.MediaServer, w io.Writer) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, c := range a.Cameras() {
			st, _ := server.Stream(c.StreamName)
			fmt.Fprintf(w, "%s  %-5s relaying=%-5v %s %dx%d %.0f fps %4d kbit/s  stand-in got %d frames (%d key)  %s\n",
				time.Now().Format("15:04:05"), c.ID, c.Relay.Relaying, c.Relay.Codec, c.Relay.Width, c.Relay.Height,
				c.Relay.FPS, c.Relay.BitrateBps/1000, st.VideoFrames, st.KeyFrames, c.Relay.LastError)
		}
	}
}
