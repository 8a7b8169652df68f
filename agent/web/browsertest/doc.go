// Package browsertest drives the pairing page of camgate's agent/web in a real, headless
// Chromium: log in, list cameras, add one, and check that device-supplied text stays text.
//
// It is a module of its own so that chromedp never enters the daemon's go.mod. Run it with
//
//	cd agent/web/browsertest && go test ./...
//
// and add -args -update-screenshots to refresh the committed screenshots in
// agent/web/screenshots/. Screenshots of every run go to artifacts/web/ at the repository root.
package browsertest
