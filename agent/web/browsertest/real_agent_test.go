package browsertest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/camgate/camgate/agent"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// Issue 7 acceptance 1 against the real agent: the page logs in with the gateway's setup code,
// sees the simulated cameras, adds one by RTSP URL with its password, and sees it relaying to
// the Flussonic stand-in. A camera named like an HTML injection shows as text.
func TestPairingPageWithTheRealAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	flussonic, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(ctx, t, "flussonic", flussonic.Run)
	seen, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(ctx, t, "seen", seen.Run)
	const camUser, camPassword = "viewer", "Real-pa55:word"
	toAdd, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0", Username: camUser, Password: camPassword})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(ctx, t, "toAdd", toAdd.Run)

	dataDir := t.TempDir()
	cfg := agent.DefaultConfig()
	cfg.GatewayID, cfg.DataDir = "gwp", dataDir
	cfg.Web.Listen, cfg.SMTP.Listen = "127.0.0.1:0", ""
	cfg.Discovery.ONVIF, cfg.Discovery.MDNS = false, false
	cfg.Flussonic.Publish = flussonic.URL()
	cfg.Cameras = []agent.CameraConfig{{ID: "porch", Name: xssName, URL: seen.URL(), Audio: true, Enabled: true}}
	a, code := startAgent(t, cfg)
	url := "http://" + a.WebAddr() + "/"

	// The browser is set to Russian, as most owners' and installers' are (issue 16).
	ru := words(t, "ru")
	bctx := browserIn(t, "ru-RU,ru;q=0.9")
	run := steps(t, bctx)
	run("log in with the gateway's setup code",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(url),
		chromedp.WaitVisible("#login-code", chromedp.ByID),
		chromedp.SendKeys("#login-code", code, chromedp.ByID),
		chromedp.Click(`#login-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#app-view", chromedp.ByID),
		waitJS(`document.getElementById("st-id").textContent === "gwp"`),
	)
	run("the configured camera relays, its hostile name shown as text",
		waitJS(`document.querySelector('.cam[data-id="porch"] .cam-state').textContent === `+
			jsString(ru["cam.state_relaying"])),
		waitJS(`document.querySelector('.cam[data-id="porch"] .cam-name').textContent === `+jsString(xssName)),
	)
	var injected bool
	run("no element was injected", chromedp.Evaluate(`document.querySelector('img[src="x"]') !== null`, &injected))
	if injected {
		t.Error("the camera's name was parsed as HTML")
	}
	// Issue 16 acceptance 4 against the real agent: a wrong camera password fails the add, and the
	// page says so in Russian: the agent wraps a refused password as web.ErrCameraUnauthorized
	// (code camera_unauthorized), which the page words in its own language.
	var failed string
	run("a wrong camera password fails the add, explained in Russian",
		chromedp.Click(`input[name="mode"][value="url"]`, chromedp.ByQuery),
		chromedp.SendKeys("#add-url", toAdd.URL(), chromedp.ByID),
		chromedp.SendKeys("#add-user", camUser, chromedp.ByID),
		chromedp.SendKeys("#add-pass", "not-"+camPassword, chromedp.ByID),
		chromedp.Click("#add-submit", chromedp.ByID),
		waitJS(`!document.getElementById("add-submit").disabled && `+
			`document.getElementById("add-result").classList.contains("error")`),
		chromedp.Text("#add-result", &failed, chromedp.ByID),
	)
	if failed != ru["err.camera_unauthorized"] {
		t.Errorf("a wrong password is explained as %q, want %q", failed, ru["err.camera_unauthorized"])
	}
	t.Logf("a wrong password on the real agent: %q", failed)
	addedWords, _, _ := strings.Cut(ru["add.added"], "{name}")
	run("add a camera by RTSP URL with its password",
		clearInput("#add-pass"),
		chromedp.SendKeys("#add-pass", camPassword, chromedp.ByID),
		chromedp.SendKeys("#add-name", "Garage", chromedp.ByID),
		chromedp.Click("#add-submit", chromedp.ByID),
		waitJS(`document.getElementById("add-result").textContent.startsWith(`+jsString(addedWords)+`)`),
	)
	run("its relay becomes relaying",
		waitJS(camCards+`.some(c => c.querySelector(".cam-name").textContent === "Garage" &&
			c.querySelector(".cam-state").textContent === `+jsString(ru["cam.state_relaying"])+`)`),
	)
	var html string
	run("read the page", chromedp.Evaluate(`document.documentElement.outerHTML`, &html))
	if strings.Contains(html, camPassword) {
		t.Error("the camera password is in the page")
	}
	screenshots(t, bctx, "pairing-real-agent")

	var added string
	for _, c := range a.Cameras() {
		if c.Name == "Garage" {
			added = c.StreamName
		}
	}
	st, ok := flussonic.Stream(added)
	if !ok || st.VideoFrames == 0 {
		t.Errorf("the stand-in got nothing on %q: %+v", added, st)
	}
}

// startAgent runs the real agent on cfg until the test ends, and returns it with its setup code.
func startAgent(t *testing.T, cfg agent.Config) (*agent.Agent, string) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	code, err := agent.PairCode(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *agent.Agent, 1)
	a := agent.New(agent.Loaded{Config: cfg}, agent.Options{Logger: slog.New(slog.DiscardHandler), Version: "browsertest",
		Ready: func(a *agent.Agent) { ready <- a }})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent stopped with: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready in 20s")
	}
	return a, code
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
