package browsertest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/camgate/camgate/agent"
	"github.com/camgate/camgate/internal/sim"
)

// agentIDForm matches words that speak of an Agent ID, in English or Russian: SC's "add by
// Agent ID" form looks IDs up at Flussonic's activation server, so the page must not send the
// owner there with camgate's agent_id (SPEC §3).
// porchState is the porch camera's relay state on the page, to be compared with a word.
const porchState = `document.querySelector('.cam[data-id="porch"] .cam-state').textContent === `

var agentIDForm = regexp.MustCompile(`(?i)agent[\s_-]*id|агент`)

// Issue 14 acceptance 6 and the page's publish password, against the real agent:
//   - the Flussonic stand-in takes the camera's stream only with its publish password; the
//     owner types it into the page's connection form, and the relay starts, so the password
//     went as Flussonic checks it (the ?password= query), not as user:password@;
//   - for the relayed camera the page shows what SC's "add camera by parameters" form needs,
//     the camera's name and its play URL (flussonic.play + stream name), each with a copy button
//     that puts exactly that text on the clipboard, in Russian and in English;
//   - nowhere on the page, in either language, is there text about an Agent ID, nor the
//     camera's agent_id.
func TestSCAddByParametersWithTheRealAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const (
		gateway, camName, stream = "gws", "Крыльцо", "gws-porch"
		publishPassword          = "pub S3cret&pw"
		play                     = "rtsp://play.example.com:554/"
	)
	flussonic, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0", RequireStream: true})
	if err != nil {
		t.Fatal(err)
	}
	flussonic.AddStream(sim.Stream{Name: stream, Inputs: []sim.Input{{URL: "publish://"}}, Password: publishPassword})
	go func() { _ = flussonic.Run(ctx) }()
	cam, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = cam.Run(ctx) }()

	cfg := agent.DefaultConfig()
	cfg.GatewayID, cfg.DataDir = gateway, t.TempDir()
	cfg.Web.Listen, cfg.SMTP.Listen = "127.0.0.1:0", ""
	cfg.Discovery.ONVIF, cfg.Discovery.MDNS = false, false
	cfg.Flussonic.Publish, cfg.Flussonic.Play = flussonic.URL(), play
	cfg.Cameras = []agent.CameraConfig{{ID: "porch", Name: camName, URL: cam.URL(), Audio: true, Enabled: true}}
	a, code := startAgent(t, cfg)
	origin := "http://" + a.WebAddr()
	var porch agent.CameraStatus
	for _, c := range a.Cameras() {
		if c.ID == "porch" {
			porch = c
		}
	}
	if porch.PlayURL != play+stream || porch.AgentID == "" {
		t.Fatalf("the agent's camera: play URL %q, agent_id %q; want %q and an agent_id",
			porch.PlayURL, porch.AgentID, play+stream)
	}

	ru, en := words(t, "ru"), words(t, "en")
	bctx := browserIn(t, "ru-RU,ru;q=0.9")
	run := steps(t, bctx)
	run("log in, allowing the page to use the clipboard",
		cdpbrowser.GrantPermissions([]cdpbrowser.PermissionType{cdpbrowser.PermissionTypeClipboardReadWrite,
			cdpbrowser.PermissionTypeClipboardSanitizedWrite}).WithOrigin(origin),
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(origin+"/"),
		chromedp.WaitVisible("#login-code", chromedp.ByID),
		chromedp.SendKeys("#login-code", code, chromedp.ByID),
		chromedp.Click(`#login-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#app-view", chromedp.ByID),
		waitJS(`document.getElementById("st-id").textContent === "gws"`),
		waitJS(`document.getElementById("fl-url").value !== ""`),
	)
	waitFor(t, 30*time.Second, "Flussonic to refuse the publish without its password", func() bool {
		return len(flussonic.Refusals()[stream]) > 0
	})
	if st, _ := flussonic.Stream(stream); st.VideoFrames != 0 {
		t.Fatalf("the stand-in took video without the publish password: %+v", st)
	}

	run("type the publish password into the Flussonic form and save",
		chromedp.SendKeys("#fl-pass", publishPassword, chromedp.ByID),
		chromedp.Click(`#conn-form button[type="submit"]`, chromedp.ByQuery),
		waitJS(`document.getElementById("conn-result").textContent === `+jsString(ru["form.saved"])),
		waitJS(`document.getElementById("fl-pass").placeholder === `+jsString(ru["form.unchanged"])),
	)
	run("the camera relays: the password reached Flussonic as it checks it",
		waitJS(porchState+jsString(ru["cam.state_relaying"])),
	)
	waitFor(t, 30*time.Second, "video at the stand-in", func() bool {
		st, _ := flussonic.Stream(stream)
		return st.VideoFrames > 0
	})
	var shownPublish string
	run("the form shows the publish URL without its password",
		chromedp.Value("#fl-url", &shownPublish, chromedp.ByID))
	if strings.Contains(shownPublish, "password") || strings.Contains(shownPublish, "@") {
		t.Errorf("the form shows the publish URL as %q", shownPublish)
	}

	for _, lang := range []struct {
		name  string
		words map[string]string
	}{{"ru", ru}, {"en", en}} {
		if lang.name == "en" {
			run("switch to English",
				chromedp.Click("#lang-switch", chromedp.ByID),
				waitJS(`document.documentElement.lang === "en"`),
				waitJS(porchState+jsString(en["cam.state_relaying"])),
			)
		}
		checkSCBlock(t, bctx, lang.name, lang.words, camName, porch.PlayURL)
		var text string
		run(lang.name+": read the whole page", chromedp.Evaluate(`document.body.innerText`, &text))
		if strings.Contains(text, porch.AgentID) {
			t.Errorf("%s: the page shows the agent_id %s", lang.name, porch.AgentID)
		}
		if m := agentIDForm.FindString(text); m != "" {
			t.Errorf("%s: the page speaks of an Agent ID (%q)", lang.name, m)
		}
	}
	// The catalogues hold every word the page can show, visible now or not.
	for lang, c := range map[string]map[string]string{"ru": ru, "en": en} {
		for k, v := range c {
			if agentIDForm.MatchString(v) {
				t.Errorf("%s.json %s speaks of an Agent ID: %q", lang, k, v)
			}
		}
	}
	screenshots(t, bctx, "pairing-sc-values")
}

// checkSCBlock checks the relayed camera's block for SC's "add camera by parameters" form in one
// language: its title, the name and the play URL, and that each copy button copies its value.
func checkSCBlock(t *testing.T, ctx context.Context, lang string, w map[string]string, name, playURL string) {
	t.Helper()
	run := steps(t, ctx)
	const card = `.cam[data-id="porch"] `
	var title, shownName, shownURL, nameLabel, urlLabel string
	var buttons []string
	run(lang+": the SC block shows the name and the play URL",
		chromedp.WaitVisible(card+".sc", chromedp.ByQuery),
		chromedp.Text(card+".sc-title", &title, chromedp.ByQuery),
		chromedp.Text(card+".sc-name", &shownName, chromedp.ByQuery),
		chromedp.Text(card+".sc-url", &shownURL, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll('`+card+`.sc > span')].map(s => s.textContent)[0]`, &nameLabel),
		chromedp.Evaluate(`[...document.querySelectorAll('`+card+`.sc > span')].map(s => s.textContent)[1]`, &urlLabel),
		chromedp.Evaluate(`[...document.querySelectorAll('`+card+`.sc button.copy')]
			.filter(b => b.checkVisibility()).map(b => b.textContent)`, &buttons),
	)
	if title != w["cam.sc_title"] || nameLabel != w["cam.sc_name"] || urlLabel != w["cam.sc_play_url"] {
		t.Errorf("%s: SC block worded %q / %q / %q, want the catalogue's %q / %q / %q", lang, title, nameLabel, urlLabel,
			w["cam.sc_title"], w["cam.sc_name"], w["cam.sc_play_url"])
	}
	if shownName != name || shownURL != playURL {
		t.Errorf("%s: SC block shows %q and %q, want %q and %q", lang, shownName, shownURL, name, playURL)
	}
	if len(buttons) != 2 || buttons[0] != w["cam.copy"] || buttons[1] != w["cam.copy"] {
		t.Errorf("%s: copy buttons %q, want two saying %q", lang, buttons, w["cam.copy"])
	}
	for _, b := range []struct{ button, want string }{{"copy-name", name}, {"copy-url", playURL}} {
		var clip string
		run(lang+": "+b.button+" copies its value",
			chromedp.Evaluate(`navigator.clipboard.writeText("")`, nil, awaitPromise),
			chromedp.Click(card+"."+b.button, chromedp.ByQuery),
			waitJS(`document.querySelector('`+card+`.`+b.button+`').textContent === `+jsString(w["cam.copied"])),
			chromedp.Evaluate(`navigator.clipboard.readText()`, &clip, awaitPromise),
		)
		if clip != b.want {
			t.Errorf("%s: %s put %q on the clipboard, want %q", lang, b.button, clip, b.want)
		}
	}
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, patience time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", patience, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
