package browsertest

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/agent/web"
	"github.com/camgate/camgate/internal/testtool"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "also write the screenshots to agent/web/screenshots/")

const (
	setupCode = "2468-1357"
	camPass   = "Cam-pa55;word"
)

// chromium finds the browser, or skips (fails in CI) when the chromium package is missing.
func chromium(t *testing.T) string {
	t.Helper()
	return testtool.Need(t, "chromium", "chromium", "chromium-browser", "google-chrome")
}

// startServer runs the pairing page on a loopback port with the fake backend.
func startServer(t *testing.T, b web.Backend) string {
	t.Helper()
	s, err := web.NewServer(web.Config{Addr: "127.0.0.1:0", PairCode: setupCode, Backend: b, Version: "v0.9.0-browsertest",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pairing page: %v", err)
		}
	})
	return "http://" + s.Addr().String() + "/"
}

// browser starts a headless Chromium that cannot call out: no background services, a fresh
// profile, and every host name but loopback resolving to nothing.
//
// The profile is not a t.TempDir: Chromium's helper processes can still be writing to it for a
// moment after the browser itself has gone, and TempDir's cleanup fails the test on the first
// "directory not empty" (it did in CI). Cleanup stops the browser (cancelling the allocator
// waits for its process) and then removes the profile, retrying while the helpers finish. (A
// graceful Browser.close was tried: Chromium exits without answering it, so it only adds a
// timeout.)
func browser(t *testing.T) context.Context {
	t.Helper()
	return browserIn(t, "en-US,en;q=0.9")
}

// browserIn is browser with every request saying Accept-Language: acceptLanguage, as a browser
// set to that language does.
func browserIn(t *testing.T, acceptLanguage string) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "camgate-browsertest-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		if err := removeProfile(profile, 10*time.Second); err != nil {
			t.Errorf("browser profile: %v", err)
		}
	})
	if err := chromedp.Run(ctx, network.Enable(),
		network.SetExtraHTTPHeaders(network.Headers{"Accept-Language": acceptLanguage})); err != nil {
		t.Fatalf("browser: %v", err)
	}
	return ctx
}

// removeProfile removes Chromium's profile directory, retrying while processes that outlived
// the browser still write to it.
func removeProfile(dir string, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// steps returns a runner of named steps in the browser: a failing step ends the test with its name.
func steps(t *testing.T, ctx context.Context) func(step string, actions ...chromedp.Action) {
	return func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(expr string) chromedp.Action {
	return chromedp.Poll(expr, nil,
		chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))
}

// camCards is a JavaScript array of the page's camera cards.
const camCards = `[...document.querySelectorAll("#cameras .cam")]`

// camNamed is a JavaScript expression for the camera card with that name (undefined if none).
func camNamed(name string) string {
	return camCards + `.find(c => c.querySelector(".cam-name").textContent === ` + jsString(name) + `)`
}

// clearInput empties a text field as selecting all and deleting would.
func clearInput(sel string) chromedp.Action {
	return chromedp.Evaluate(`document.querySelector(`+strconv.Quote(sel)+`).value = ""`, nil)
}

func TestPairingPage(t *testing.T) {
	fb := newFakeBackend(t)
	url := startServer(t, fb)
	ctx := browser(t)

	var mu sync.Mutex
	var dialogs []string
	var exceptions []string
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			mu.Lock()
			dialogs = append(dialogs, e.Type.String()+": "+e.Message)
			mu.Unlock()
			// A dialog left open fails the test below: the page stops answering.
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(false)) }()
		case *runtime.EventExceptionThrown:
			mu.Lock()
			exceptions = append(exceptions, e.ExceptionDetails.Error())
			mu.Unlock()
		}
	})
	// Record CSP violations from the first byte on: the page must work under its own policy.
	run0 := chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.cspViolations = [];
			document.addEventListener("securitypolicyviolation",
				e => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));`).Do(ctx)
		return err
	})
	if err := chromedp.Run(ctx, run0); err != nil {
		t.Fatal(err)
	}

	run := steps(t, ctx)

	run("open the page",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(url),
		chromedp.WaitVisible("#login-code", chromedp.ByID),
	)
	run("a wrong code is refused in words",
		chromedp.SendKeys("#login-code", "0000-0000", chromedp.ByID),
		chromedp.Click(`#login-form button[type="submit"]`, chromedp.ByQuery),
		waitJS(`document.getElementById("login-error").textContent === `+jsString(words(t, "en")["err.wrong_setup_code"])),
	)
	run("log in with the code typed without its dash",
		clearInput("#login-code"),
		chromedp.SendKeys("#login-code", strings.ReplaceAll(setupCode, "-", ""), chromedp.ByID),
		chromedp.Click(`#login-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#app-view", chromedp.ByID),
		waitJS(`document.getElementById("st-id").textContent === "eltex-7f3a21"`),
		waitJS(`document.querySelectorAll("#cameras .cam").length === 3`),
	)

	var scName, scURL, cardText string
	run("the added camera shows SC's add-by-parameters values and its relay state",
		waitJS(`document.querySelector('.cam[data-id="porch"] .cam-state').textContent === "relaying"`),
		chromedp.Text(`.cam[data-id="porch"] .sc-name`, &scName, chromedp.ByQuery),
		chromedp.Text(`.cam[data-id="porch"] .sc-url`, &scURL, chromedp.ByQuery),
		chromedp.Text(`.cam[data-id="porch"]`, &cardText, chromedp.ByQuery),
	)
	if scName != "Porch" || scURL != porchPlayURL {
		t.Errorf("SC values shown as %q and %q, want Porch and %s", scName, scURL, porchPlayURL)
	}
	// SPEC §3: agent_id is not a Flussonic Agent ID, so the page must not offer it for SC's form.
	if strings.Contains(cardText, "4815162342") || strings.Contains(cardText, "Agent ID") {
		t.Errorf("the card offers the agent_id: %q", cardText)
	}

	var shownName string
	var injected bool
	run("a hostile camera name stays text",
		chromedp.Text(`.cam[data-id="cam-001122334455"] .cam-name`, &shownName, chromedp.ByQuery),
		chromedp.Evaluate(
			`document.querySelector('img[src="x"]') !== null || document.querySelector("#cameras b") !== null`,
			&injected),
	)
	if shownName != xssName {
		t.Errorf("hostile name shown as %q, want the literal %q", shownName, xssName)
	}
	if injected {
		t.Error("device text was parsed as HTML")
	}

	run("a failing stream test is explained",
		chromedp.Click(`input[name="mode"][value="url"]`, chromedp.ByQuery),
		chromedp.SendKeys("#add-url", "rtsp://192.168.1.70:554/live", chromedp.ByID),
		chromedp.SendKeys("#add-user", "admin", chromedp.ByID),
		chromedp.SendKeys("#add-pass", "wrong", chromedp.ByID),
		chromedp.Click("#add-submit", chromedp.ByID),
		waitJS(`document.getElementById("add-result").textContent === `+jsString(words(t, "en")["err.camera_unauthorized"])),
	)
	run("add a camera by RTSP URL with its password",
		clearInput("#add-pass"),
		chromedp.SendKeys("#add-pass", camPass, chromedp.ByID),
		chromedp.SendKeys("#add-name", "Garage", chromedp.ByID),
		chromedp.Click("#add-submit", chromedp.ByID),
		waitJS(`document.getElementById("add-result").textContent.startsWith("Added")`),
		waitJS(camCards+`.some(c => c.querySelector(".cam-name").textContent === "Garage")`),
	)
	run("its relay comes up",
		waitJS(camCards+`.some(c => c.querySelector(".cam-name").textContent === "Garage" &&
			c.querySelector(".cam-state").textContent === "relaying" &&
			c.querySelector(".cam-media").textContent.includes("2.3 Mb/s"))`),
	)
	run("make a Wi-Fi QR code",
		chromedp.SendKeys("#wf-ssid", `Home;Net`, chromedp.ByID),
		chromedp.SendKeys("#wf-pass", `pa:ss,word"1`, chromedp.ByID),
		chromedp.Click(`#wifi-form button[type="submit"]`, chromedp.ByQuery),
		waitJS(`!document.getElementById("wifi-img").hidden && document.getElementById("wifi-img").naturalWidth > 0`),
	)
	run("snapshots load",
		waitJS(`[...document.querySelectorAll("#cameras .thumb img")].filter(i => !i.hidden && i.naturalWidth > 0)`+
			`.length >= 1`),
	)

	var text string
	run("read the page", chromedp.Evaluate(`document.documentElement.outerHTML`, &text))
	if strings.Contains(text, camPass) {
		t.Error("the camera password is still in the page after adding")
	}

	var violations []string
	run("read CSP violations", chromedp.Evaluate(`window.cspViolations`, &violations))
	if len(violations) > 0 {
		t.Errorf("Content-Security-Policy violations: %q", violations)
	}

	screenshots(t, ctx, "pairing")

	garage := camNamed("Garage")
	run("disable a camera",
		chromedp.Evaluate(garage+`.querySelector(".act-toggle").click()`, nil),
		waitJS(garage+`.querySelector(".cam-state").textContent === "disabled"`),
		waitJS(garage+`.querySelector(".act-toggle").textContent === "Enable"`),
	)
	run("rename a camera",
		chromedp.Evaluate(garage+`.querySelector(".act-rename").click()`, nil),
		chromedp.Evaluate(garage+`.querySelector(".rename input").value = "Garage door"`, nil),
		chromedp.Evaluate(garage+`.querySelector(".rename button[type=submit]").click()`, nil),
		waitJS(`[...document.querySelectorAll("#cameras .cam-name")].some(n => n.textContent === "Garage door")`),
	)
	door := camNamed("Garage door")
	run("remove a camera with two taps",
		chromedp.Evaluate(door+`.querySelector(".act-remove").click()`, nil),
		waitJS(door+`.querySelector(".act-remove").textContent.startsWith("Tap again")`),
		chromedp.Evaluate(door+`.querySelector(".act-remove").click()`, nil),
		waitJS(`document.querySelectorAll("#cameras .cam").length === 3 && !`+door),
	)
	run("save the SC connection",
		chromedp.SendKeys("#mq-pass", "mqtt-pa55", chromedp.ByID),
		chromedp.Click(`#conn-form button[type="submit"]`, chromedp.ByQuery),
		waitJS(`document.getElementById("conn-result").textContent === "Saved."`),
		waitJS(`document.getElementById("mq-pass").value === "" && `+
			`document.getElementById("mq-pass").placeholder === "unchanged"`),
	)
	run("log out",
		chromedp.Click("#logout", chromedp.ByID),
		chromedp.WaitVisible("#login-code", chromedp.ByID),
	)

	mu.Lock()
	defer mu.Unlock()
	if len(exceptions) > 0 {
		t.Errorf("script errors on the page: %q", exceptions)
	}
	if len(dialogs) > 0 {
		t.Errorf("the page opened dialogs (injected script?): %q", dialogs)
	}
}

// screenshots writes the page at phone and desktop width to artifacts/web/ and, with
// -update-screenshots, to agent/web/screenshots/.
func screenshots(t *testing.T, ctx context.Context, prefix string) {
	t.Helper()
	dirs := []string{filepath.Join("..", "..", "..", "artifacts", "web")}
	if *updateScreenshots && slices.Contains([]string{"pairing", "pairing-ru", "pairing-en"}, prefix) {
		dirs = append(dirs, filepath.Join("..", "screenshots"))
	}
	for _, width := range []int64{390, 1280} {
		var png []byte
		if err := chromedp.Run(ctx,
			chromedp.EmulateViewport(width, 900),
			chromedp.Sleep(300*time.Millisecond), // let the layout settle after the resize
			chromedp.FullScreenshot(&png, 100),
		); err != nil {
			t.Fatalf("screenshot at %d px: %v", width, err)
		}
		name := prefix + "-" + map[int64]string{390: "390px", 1280: "1280px"}[width] + ".png"
		for _, dir := range dirs {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
