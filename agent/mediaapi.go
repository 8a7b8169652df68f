package agent

import (
	"context"
	"net/url"
	"sync"

	"github.com/camgate/camgate/uplink"
)

// startStreamSetup starts the zero-touch stream setup (SPEC §2 flussonic.api) when it is
// configured. It runs beside the relays and never holds them up; changing flussonic.api takes
// a restart.
func (a *Agent) startStreamSetup(ctx context.Context, cfg *Config, wg *sync.WaitGroup) {
	if cfg.Flussonic.API.URL == "" {
		return
	}
	log := a.log.With("part", "media-api")
	s, err := uplink.NewStreamSetup(uplink.StreamSetupConfig{
		URL: cfg.Flussonic.API.URL, Username: cfg.Flussonic.API.Username, Password: cfg.Flussonic.API.Password, Logger: log,
	})
	if err != nil {
		log.Error("stream setup disabled", "err", err) // Validate has checked the URL already
		return
	}
	a.mu.Lock()
	a.streams = s
	a.mu.Unlock()
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Run(ctx) }()
}

// wantStreamsLocked hands the stream setup the streams of every enabled camera.
func (a *Agent) wantStreamsLocked(cfg *Config) {
	if a.streams == nil {
		return
	}
	password := publishPassword(cfg.Flussonic.Publish)
	var specs []uplink.StreamSpec
	for _, e := range a.cameras {
		if !e.conf.Enabled || e.origin == originDiscovered {
			continue
		}
		title := e.conf.Name
		if title == "" {
			title = e.id
		}
		specs = append(specs, uplink.StreamSpec{Name: cfg.CameraStreamName(e.id, e.conf.StreamName), Title: title, Password: password})
	}
	a.streams.Want(specs)
}

// streamProblemLocked is why the stream name could not be set up at the Media Server, "".
func (a *Agent) streamProblemLocked(name string) string {
	if a.streams == nil {
		return ""
	}
	return a.streams.Problem(name)
}

// publishPassword is the password query of flussonic.publish: Flussonic checks a stream's
// publish password there ("Authorization for stream publishing"), so the stream gets the same.
func publishPassword(publish string) string {
	u, err := url.Parse(publish)
	if err != nil {
		return ""
	}
	return u.Query().Get("password")
}
