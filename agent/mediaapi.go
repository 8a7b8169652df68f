package agent

import (
	"context"
	"net/url"
	"sync"

	"github.com/camgate/camgate/uplink"
)

// newStreamSetup makes the zero-touch stream setup (SPEC §2 flussonic.api) when it is
// configured; Run sets a.streams from it before any goroutine reads it. It runs beside the
// relays and never holds them up; changing flussonic.api takes a restart.
func (a *Agent) newStreamSetup(cfg *Config) *uplink.StreamSetup {
	if cfg.Flussonic.API.URL == "" {
		return nil
	}
	log := a.log.With("part", "media-api")
	s, err := uplink.NewStreamSetup(uplink.StreamSetupConfig{
		URL: cfg.Flussonic.API.URL, Username: cfg.Flussonic.API.Username, Password: cfg.Flussonic.API.Password,
		Logger: log,
	})
	if err != nil {
		log.Error("stream setup disabled", "err", err) // Validate has checked the URL already
		return nil
	}
	return s
}

// startStreamSetup runs the stream setup, if there is one, until ctx ends.
func (a *Agent) startStreamSetup(ctx context.Context, wg *sync.WaitGroup) {
	if a.streams == nil {
		return
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.streams.Run(ctx) }()
}

// wantStreams hands the stream setup the streams of every enabled camera. Want never blocks,
// so the registry loop calls it after each reconcile.
func (r *registry) wantStreams() {
	s := r.a.streams
	if s == nil {
		return
	}
	cfg := &r.loaded.Config
	password := publishPassword(cfg.Flussonic.Publish)
	var specs []uplink.StreamSpec
	for _, e := range r.cameras {
		if !e.conf.Enabled || e.origin == originDiscovered {
			continue
		}
		title := e.conf.Name
		if title == "" {
			title = e.id
		}
		specs = append(specs, uplink.StreamSpec{
			Name: cfg.CameraStreamName(e.id, e.conf.StreamName), Title: title, Password: password,
		})
	}
	s.Want(specs)
}

// streamProblem is why the stream name could not be set up at the Media Server, "".
func (a *Agent) streamProblem(name string) string {
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
