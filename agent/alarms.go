package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/lan"
	"github.com/camgate/camgate/motion"
	"github.com/camgate/camgate/smtp"
	"github.com/camgate/camgate/store"
)

// snapshots keeps each camera's latest JPEG in memory (bounded by smtp.MaxSnapshotBytes each) and
// on disk, so the page and MQTT can show it after a restart.
type snapshots struct {
	mu     sync.Mutex
	latest map[string][]byte
	at     map[string]time.Time
}

// keepSnapshot keeps a camera's latest JPEG in memory, on disk for the page after a restart,
// and queued (keep-latest: only the newest waits) for its retained MQTT topic. The file on disk
// and the queued payload are one file, linked by the store (store.Message.PayloadFile): the JPEG
// reaches the flash once per mail, not twice.
func (a *Agent) keepSnapshot(ctx context.Context, cameraID string, jpeg []byte) error {
	a.snaps.mu.Lock()
	a.snaps.latest[cameraID] = jpeg
	a.snaps.at[cameraID] = time.Now()
	a.snaps.mu.Unlock()
	dir := filepath.Join(a.config().DataDir, "snapshots")
	tmp, err := writeSnapshotTemp(dir, cameraID, jpeg)
	if err != nil {
		a.log.Warn("snapshot not kept on disk", "camera_id", cameraID, "err", err)
	}
	var queued error
	if link := a.link.Load(); link != nil && link.mqtt != nil {
		queued = a.enqueue(ctx, mqttQueue, store.Message{Class: store.ClassEvent, Topic: "cameras/" + cameraID + "/snapshot",
			Retain: true, Latest: true, Payload: jpeg, PayloadFile: tmp})
	}
	// Renamed only now, and never rewritten in place: the store may hold a link to this file.
	if tmp != "" {
		if err := os.Rename(tmp, filepath.Join(dir, cameraID+".jpg")); err != nil {
			os.Remove(tmp)
			a.log.Warn("snapshot not kept on disk", "camera_id", cameraID, "err", err)
		}
	}
	return queued
}

// writeSnapshotTemp writes jpeg to a new file in dir, named for the camera and unique, so that
// two mails of one camera at once do not write into one file. It is not fsynced: the store's
// link fsyncs it when the snapshot is queued, and the page's copy may be lost in a power cut.
func writeSnapshotTemp(dir, cameraID string, jpeg []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, cameraID+".jpg.*.tmp")
	if err != nil {
		return "", err
	}
	_, err = f.Write(jpeg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o640)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// sweepSnapshotTemps removes the temporary snapshot files a crash left in dataDir's snapshots:
// each mail writes its own, so without this a gateway that loses power now and then would fill
// its flash with them. It runs before the mail server starts, when none is being written. The
// store's link to a queued snapshot is a name of its own, so it survives this.
func sweepSnapshotTemps(dataDir string, log *slog.Logger) {
	dir := filepath.Join(dataDir, "snapshots")
	temps, err := filepath.Glob(filepath.Join(dir, "*.jpg.*.tmp"))
	if err != nil {
		return // only a bad pattern makes Glob fail, and this one is fixed
	}
	for _, f := range temps {
		if err := os.Remove(f); err != nil {
			log.Warn("a crash's temporary snapshot file could not be removed", "file", f, "err", err)
		}
	}
	if len(temps) > 0 {
		log.Info("removed temporary snapshot files a crash left", "files", len(temps))
	}
}

// freshSnapshot returns the latest JPEG if it is younger than maxAge.
func (a *Agent) freshSnapshot(cameraID string, maxAge time.Duration) ([]byte, bool) {
	a.snaps.mu.Lock()
	defer a.snaps.mu.Unlock()
	b, ok := a.snaps.latest[cameraID]
	if !ok || time.Since(a.snaps.at[cameraID]) > maxAge {
		return nil, false
	}
	return b, true
}

// Snapshot returns the latest JPEG of a camera, from memory or from disk after a restart.
func (a *Agent) Snapshot(cameraID string) ([]byte, bool) {
	a.snaps.mu.Lock()
	b, ok := a.snaps.latest[cameraID]
	a.snaps.mu.Unlock()
	if ok {
		return b, true
	}
	if strings.ContainsAny(cameraID, `/\`) || cameraID == "" {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(a.config().DataDir, "snapshots", cameraID+".jpg"))
	return b, err == nil
}

// startSMTP runs the alarm mail server when smtp.listen is set.
func (a *Agent) startSMTP(ctx context.Context, cfg *Config, wg *sync.WaitGroup) error {
	if cfg.SMTP.Listen == "" {
		return nil
	}
	policy, err := lan.NewPolicy(cfg.SMTP.Allow)
	if err != nil {
		return fmt.Errorf("smtp.allow: %w", err)
	}
	login, err := a.smtpLoginFor(cfg)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	srv, err := smtp.NewServer(smtp.Config{
		Addr: cfg.SMTP.Listen, Username: login.username, Password: login.password, AuthOptional: login.generated,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes, Policy: policy, Logger: a.log.With("part", "smtp"),
	}, a.handleAlarmMail)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if err := srv.Listen(ctx); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if addr := srv.Addr(); addr != nil {
		a.smtpAddr.Store(&addr)
	}
	a.smtpLogin.Store(&login)
	a.smtpServer.Store(srv)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Run(ctx); err != nil {
			a.log.Error("smtp server stopped", "err", err)
		}
	}()
	return nil
}

// handleAlarmMail maps a mail to its camera (SPEC §7: recipient's local part, else the sender's
// IP, else the sender address) and turns it into motion and a snapshot. An error means the mail
// was not stored (the server answers 451, the camera sends it again): a snapshot that cannot be
// queued fails the mail too, so nothing is lost unsaid.
func (a *Agent) handleAlarmMail(ctx context.Context, m smtp.Alarm) error {
	id, how := a.cameraForMail(m)
	if id == "" {
		a.log.Warn("alarm mail from an unknown camera",
			"recipients", m.Recipients, "from", m.From, "ip", m.RemoteIP.String(), "subject", m.Subject)
		return nil
	}
	if !m.Authenticated && !a.mailFromCamera(id, m) {
		// 250, not 5xx: an impostor learns nothing from the answer, and a real camera that
		// sends from another address is found in this log line rather than retrying.
		a.log.Warn("alarm mail dropped: not authenticated and not from the camera's address",
			"camera_id", id, "matched_by", how, "ip", m.RemoteIP.String(), "subject", m.Subject)
		return nil
	}
	a.log.Debug("alarm mail",
		"camera_id", id, "matched_by", how, "motion", m.Motion, "subject", m.Subject, "snapshot_bytes", len(m.Snapshot))
	// The snapshot first: the episode's started event takes it as its preview.
	if m.Snapshot != nil {
		if err := a.keepSnapshot(ctx, id, m.Snapshot); err != nil {
			return fmt.Errorf("camera %s: snapshot not stored: %w", id, err)
		}
	}
	if m.Motion {
		if err := a.motion.report(ctx, id, motion.SourceMail, m.Text, true); err != nil {
			return fmt.Errorf("camera %s: motion not stored: %w", id, err)
		}
	}
	return nil
}

// mailFromCamera says whether an unauthenticated mail came from the camera's own address (issue
// 13: without an SMTP password a mail counts for a camera only when it comes from that camera's
// IP). A camera known by a host name, not an address, needs the SMTP password.
func (a *Agent) mailFromCamera(id string, m smtp.Alarm) bool {
	c, ok := a.view.Load().camera(id)
	if !ok || !m.RemoteIP.IsValid() {
		return false
	}
	ip, err := netip.ParseAddr(c.status.Device.IP)
	return err == nil && ip.Unmap() == m.RemoteIP.Unmap()
}

func (a *Agent) cameraForMail(m smtp.Alarm) (id, how string) {
	cams := a.view.Load().cameras
	for _, r := range m.Recipients {
		for _, c := range cams {
			if strings.EqualFold(c.status.ID, r) {
				return c.status.ID, "recipient"
			}
		}
	}
	if m.RemoteIP.IsValid() {
		ip := m.RemoteIP.Unmap().String()
		var match string
		n := 0
		for _, c := range cams {
			if c.status.Device.IP == ip {
				match = c.status.ID
				n++
			}
		}
		if n == 1 { // several cameras behind one address (an NVR) cannot be told apart by IP
			return match, "sender ip"
		}
	}
	if local, _, ok := strings.Cut(m.From, "@"); ok {
		for _, c := range cams {
			if strings.EqualFold(c.status.ID, local) {
				return c.status.ID, "sender address"
			}
		}
	}
	return "", ""
}
