package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// redactURL drops the userinfo so that a URL can be logged or shown.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	if u.User == nil && !q.Has("password") {
		return raw
	}
	u.User = nil
	if q.Has("password") { // a Flussonic stream's publish password (SPEC §4)
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

const pairCodeFile = "setup-code"

// PairCode returns the gateway's one-time setup code for the pairing page, creating it on first
// use. It lives in a file of its own (mode 0600) so that `camgate pair-code` can read it while
// the daemon holds the database.
func PairCode(dataDir string) (string, error) {
	p := filepath.Join(dataDir, pairCodeFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if code := strings.TrimSpace(string(b)); code != "" {
			return code, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	code, err := newPairCode()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(code+"\n"), 0o600); err != nil {
		return "", err
	}
	return code, os.Rename(tmp, p)
}

// newPairCode makes an 8-digit code grouped as 4-4: easy to read off a log or a label and type
// on a phone, and with the login rate limit far beyond guessing.
func newPairCode() (string, error) {
	var sb strings.Builder
	for i := 0; i < 8; i++ {
		if i == 4 {
			sb.WriteByte('-')
		}
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			return "", err
		}
		fmt.Fprint(&sb, d)
	}
	return sb.String(), nil
}
