package agent

import (
	"crypto/rand"
	"fmt"

	"github.com/camgate/camgate/agent/web"
)

// settingSMTPPassword keeps the gateway's generated SMTP password across restarts.
const settingSMTPPassword = "smtp_password"

// generatedSMTPUsername is the user name that goes with the generated SMTP password.
const generatedSMTPUsername = "camgate"

// smtpLogin is what cameras log in to the SMTP alarm server with.
type smtpLogin struct {
	username, password string
	// generated: the gateway made the password (no smtp.username in the config). It is then
	// shown to the owner, and logging in is optional: a camera that does not may still send,
	// and its mail counts only from its own address.
	generated bool
}

// smtpLoginFor returns the configured SMTP login, or else the gateway's generated one, creating
// and storing it on first use (issue 13: SMTP by default tells cameras apart). The generated
// password lives in the store, never in the config file.
func (a *Agent) smtpLoginFor(cfg *Config) (smtpLogin, error) {
	if cfg.SMTP.Username != "" {
		return smtpLogin{username: cfg.SMTP.Username, password: cfg.SMTP.Password}, nil
	}
	b, ok, err := a.db.Settings().Get(settingSMTPPassword)
	if err != nil {
		return smtpLogin{}, fmt.Errorf("reading the SMTP password: %w", err)
	}
	if !ok || len(b) == 0 {
		b = []byte(newSMTPPassword())
		if err := a.db.Settings().Put(settingSMTPPassword, b); err != nil {
			return smtpLogin{}, fmt.Errorf("keeping the new SMTP password: %w", err)
		}
		a.log.Info("SMTP password generated: the page shows it, for the cameras' alarm mail settings",
			"smtp_username", generatedSMTPUsername)
	}
	return smtpLogin{username: generatedSMTPUsername, password: string(b), generated: true}, nil
}

// smtpPasswordAlphabet leaves out letters and digits that read alike (l/1, o/0) and anything a
// camera's settings form might refuse or mangle: the owner types the password in by hand.
const smtpPasswordAlphabet = "abcdefghijkmnpqrstuvwxyz23456789"

// newSMTPPassword returns 16 characters of the alphabet, 80 bits from crypto/rand.
func newSMTPPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it so since Go 1.24)
	for i := range b {
		b[i] = smtpPasswordAlphabet[int(b[i])%len(smtpPasswordAlphabet)]
	}
	return string(b)
}

// smtpLoginStatus is the SMTP login as the page shows it: the password only when generated.
func (a *Agent) smtpLoginStatus() *web.SMTPLogin {
	l := a.smtpLogin.Load()
	if l == nil {
		return nil
	}
	w := &web.SMTPLogin{Username: l.username, Generated: l.generated}
	if l.generated {
		w.Password = l.password
	}
	return w
}
