//go:build !nodemo

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/agent"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/sim/onvifdev"
)

// The demo's ONVIF camera credentials: shown in the output, so the owner can try the page's
// "add camera" with them.
const (
	demoONVIFUser     = "admin"
	demoONVIFPassword = "demo-password"
	demoMotionEvery   = time.Minute
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	verbose := fs.Bool("v", false, "log at debug level")
	keep := fs.Duration("for", 0, "stop by itself after this long (0 = until Ctrl-C)")
	webAddr := fs.String("web", "127.0.0.1:8080", "where the pairing page listens (a free port if this one is taken)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keep > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *keep)
		defer cancel()
	}
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn) // the demo's own lines tell the story; -v shows everything
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

	server, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0",
		Logger: log.With("part", "flussonic-stand-in")})
	if err != nil {
		return fmt.Errorf("demo: flussonic stand-in: %w", err)
	}
	serve("flussonic stand-in", server.Run)
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0", Out: stdout,
		Logger: log.With("part", "event-sink")})
	if err != nil {
		return fmt.Errorf("demo: event sink: %w", err)
	}
	serve("event sink", sink.Run)
	broker, err := sim.NewBroker(sim.BrokerConfig{Addr: "127.0.0.1:0", Logger: log.With("part", "mqtt-broker")})
	if err != nil {
		return fmt.Errorf("demo: mqtt broker: %w", err)
	}
	serve("mqtt broker", broker.Run)

	newCamera := func(name string) (*sim.Camera, error) {
		cam, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0", Path: "/stream1", Logger: log.With("part", name)})
		if err != nil {
			return nil, fmt.Errorf("demo: %s: %w", name, err)
		}
		serve(name, cam.Run)
		return cam, nil
	}
	mailCam, err := newCamera("mail camera")
	if err != nil {
		return err
	}
	plainCam, err := newCamera("rtsp camera")
	if err != nil {
		return err
	}
	onvifStream, err := newCamera("onvif camera stream")
	if err != nil {
		return err
	}
	snapshot := demoJPEG()
	onvifCam, err := onvifdev.New(onvifdev.Config{
		Addr: "127.0.0.1:0", Manufacturer: "Simulated", Model: "ONVIF-Demo", Serial: "DEMO0003", MAC: "02:00:00:de:00:03",
		Name: "Demo ONVIF camera", RTSPURL: onvifStream.URL(), SnapshotJPEG: snapshot, PTZ: true,
		ClockSkew: 26 * time.Hour, Auth: onvifdev.AuthWSSecurity, Username: demoONVIFUser, Password: demoONVIFPassword,
		Logger: log.With("part", "onvif camera"),
	})
	if err != nil {
		return fmt.Errorf("demo: onvif camera: %w", err)
	}
	serve("onvif camera", onvifCam.Run)

	smtpAddr, err := freeLoopbackAddr()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if l, err := net.Listen("tcp", *webAddr); err == nil {
		l.Close()
	} else if *webAddr, err = freeLoopbackAddr(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	cfg := agent.DefaultConfig()
	cfg.GatewayID = "demo"
	cfg.DataDir = dataDir
	cfg.Web.Listen = *webAddr
	cfg.SMTP.Listen = smtpAddr
	// WS-Discovery and mDNS are multicast: on the host's loopback they would need a route change,
	// so the demo names its cameras instead (the namespace tests show discovery itself).
	cfg.Discovery.ONVIF, cfg.Discovery.MDNS = false, false
	cfg.Motion.Hold = agent.Duration(10 * time.Second)
	cfg.Flussonic.Publish = server.URL()
	cfg.MQTT.URL = broker.URL()
	cfg.Flussonic.Events = []agent.EventSinkConfig{{URL: sink.URL(), Format: agent.FormatEventSink}}
	cfg.Cameras = []agent.CameraConfig{
		{ID: "cam1", Name: "Porch (alarms by mail)", URL: mailCam.URL(), Audio: true, Enabled: true},
		{ID: "cam2", Name: "Garden", URL: plainCam.URL(), Audio: true, Enabled: true},
		{ID: "cam3", Name: "Hall (ONVIF, clock a day off)", URL: onvifCam.XAddr(), Username: demoONVIFUser,
			Password: demoONVIFPassword, Audio: true, Enabled: true},
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	code, err := agent.PairCode(dataDir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	a := agent.New(agent.Loaded{Config: cfg}, agent.Options{
		Logger: log.With("part", "agent"), LogLevel: level, Version: version,
		Ready: func(a *agent.Agent) {
			fmt.Fprintf(stdout,
				"\ncamgate demo: 3 simulated cameras relayed to a local Flussonic stand-in (nothing leaves loopback)\n\n")
			fmt.Fprintf(stdout, "Pairing page:  http://%s/   setup code %s\n", a.WebAddr(), code)
			fmt.Fprintln(stdout, "Watch a relayed stream:")
			for _, c := range cfg.Cameras {
				fmt.Fprintf(stdout, "  ffplay -rtsp_transport tcp %s      # %s\n", cfg.PublishURLOf(cfg.StreamName(c.ID)), c.Name)
			}
			fmt.Fprintf(stdout, "  ffprobe -rtsp_transport tcp %s\n", cfg.PublishURLOf(cfg.StreamName("cam1")))
			fmt.Fprintf(stdout, "Registrations, state and events as Eltex SC gets them (embedded MQTT broker at %s):\n",
				broker.URL())
			fmt.Fprintf(stdout, "  mosquitto_sub -h 127.0.0.1 -p %s -t '%s/#' -v\n", portOf(broker.URL()), cfg.TopicPrefix())
			fmt.Fprintf(stdout, "Motion: the porch camera mails an alarm and the hall camera raises an ONVIF event every %s;\n",
				demoMotionEvery)
			fmt.Fprintf(stdout, "the event sink prints them below (motion.hold is %s). Ctrl-C stops everything.\n\n",
				cfg.Motion.Hold.Std())
		}})
	serve("agent", a.Run)
	serve("status", func(ctx context.Context) error { return demoStatus(ctx, a, server, stdout) })
	serve("mail alarms", func(ctx context.Context) error { return demoMailAlarms(ctx, smtpAddr, "cam1", snapshot, log) })
	serve("onvif alarms", func(ctx context.Context) error { return demoONVIFAlarms(ctx, onvifCam) })

	<-ctx.Done()
	cancel()
	wg.Wait()
	return runErr
}

func portOf(rawURL string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rawURL, "mqtt://"))
	return port
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// demoStatus prints what the stand-in received every few seconds, so the demo shows the relay
// working without any other tool.
func demoStatus(ctx context.Context, a *agent.Agent, server *sim.MediaServer, w io.Writer) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, c := range a.Cameras() {
			st, _ := server.Stream(c.StreamName)
			problem := c.Relay.LastError
			if problem == "" {
				problem = c.Problem
			}
			fmt.Fprintf(w, "%s  %-4s relaying=%-5v %s %dx%d %.0f fps %4d kbit/s  stand-in got %d frames  %s\n",
				time.Now().Format("15:04:05"), c.ID, c.Relay.Relaying, c.Relay.Codec, c.Relay.Width, c.Relay.Height,
				c.Relay.FPS, c.Relay.BitrateBps/1000, st.VideoFrames, problem)
		}
	}
}

// every runs f after first and then every period until ctx ends.
func every(ctx context.Context, first, period time.Duration, f func(ctx context.Context)) error {
	wait := time.After(first)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wait:
		case <-t.C:
		}
		f(ctx)
	}
}

// demoMailAlarms plays a camera that mails a motion alarm with a snapshot every minute.
func demoMailAlarms(ctx context.Context, addr, cameraID string, snapshot []byte, log *slog.Logger) error {
	return every(ctx, 15*time.Second, demoMotionEvery, func(context.Context) {
		if err := sendDemoAlarm(addr, cameraID, snapshot); err != nil {
			log.Warn("demo mail camera: sending the alarm failed", "err", err)
		}
	})
}

func sendDemoAlarm(addr, cameraID string, jpegBytes []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b,
		"From: porch-camera@demo.lan\r\nTo: %s@camgate.lan\r\nSubject: Motion Detection Alarm\r\nMIME-Version: 1.0\r\n",
		cameraID)
	b.WriteString("Content-Type: multipart/mixed; boundary=demo\r\n\r\n" +
		"--demo\r\nContent-Type: text/plain\r\n\r\nAlarm event: Motion Detection\r\n")
	b.WriteString("--demo\r\nContent-Type: image/jpeg; name=snap.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64Lines(jpegBytes)
	b.WriteString(enc)
	b.WriteString("--demo--\r\n")
	return smtp.SendMail(addr, nil, "porch-camera@demo.lan", []string{cameraID + "@camgate.lan"}, b.Bytes())
}

// demoONVIFAlarms raises motion on the ONVIF camera for five seconds every minute, half a
// minute after the mail camera's.
func demoONVIFAlarms(ctx context.Context, cam *onvifdev.Device) error {
	return every(ctx, 45*time.Second, demoMotionEvery, func(ctx context.Context) {
		cam.SetMotion(true) //nolint:contextcheck // the simulated camera bounds each notification itself
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		cam.SetMotion(false) //nolint:contextcheck // as above
	})
}

// demoJPEG draws a small snapshot, so the page has a thumbnail to show.
func demoJPEG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 320, 180))
	for y := 0; y < 180; y++ {
		for x := 0; x < 320; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / 320), uint8(y * 255 / 180), 160, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 70}); err != nil {
		return nil // the demo's mails then go without a snapshot
	}
	return b.Bytes()
}

func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}
