package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// The setup code lives in a file of its own (mode 0600), not in the store: bbolt lets one
// process at a time open the database, and `camgate pair-code` must read or rotate the code
// while the daemon holds it. A rotation renames a new file into place; the daemon's pairing
// page reads the file again whenever it was replaced (pairCodeReader), so a running daemon
// takes the new code, and ends every session, without a signal: no pid file to find, and it
// works the same whether the daemon runs as root or as its own user.
const pairCodeFile = "setup-code"

// maxPairCodeFile bounds what is read of the code file: a code is 9 bytes.
const maxPairCodeFile = 256

// PairCode returns the gateway's setup code for the pairing page, creating it on first use.
func PairCode(dataDir string) (string, error) {
	code, _, err := EnsurePairCode(dataDir)
	return code, err
}

// EnsurePairCode returns the setup code, creating it when there is none; created says it was
// made now (the only time the daemon logs it).
func EnsurePairCode(dataDir string) (code string, created bool, err error) {
	code, err = readPairCode(filepath.Join(dataDir, pairCodeFile))
	if err == nil {
		return code, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNoPairCode) {
		return "", false, err
	}
	code, err = writePairCode(dataDir)
	return code, err == nil, err
}

// logCreatedPairCode logs a code made now, once: a code in every start's log would be a key
// to the gateway for whoever reads old logs.
func logCreatedPairCode(log *slog.Logger, code string, created bool) {
	if created {
		log.Info("pairing page setup code created (camgate pair-code shows it again)", "setup_code", code)
	}
}

// RotatePairCode replaces the setup code by a new one and returns it. A running daemon ends
// every session of the pairing page when it next looks at the code (at the next request).
func RotatePairCode(dataDir string) (string, error) {
	return writePairCode(dataDir)
}

var errNoPairCode = errors.New("the setup code file is empty")

func readPairCode(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPairCodeFile))
	if err != nil {
		return "", fmt.Errorf("setup code: %w", err)
	}
	code := strings.TrimSpace(string(b))
	if code == "" {
		return "", fmt.Errorf("%s: %w", path, errNoPairCode)
	}
	return code, nil
}

// writePairCode puts a new code in place atomically (a reader sees the old file or the new one,
// never half of one), owned like the file it replaces: `pair-code --rotate` run as root must
// leave a file the daemon's own user can still read.
func writePairCode(dataDir string) (string, error) {
	code, err := newPairCode()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("setup code: %w", err)
	}
	p := filepath.Join(dataDir, pairCodeFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(code+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("setup code: %w", err)
	}
	if old, err := os.Stat(p); err == nil {
		if err := chownLike(tmp, old); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("setup code: keeping the file's owner: %w", err)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("setup code: %w", err)
	}
	return code, nil
}

// newPairCode makes an 8-digit code grouped as 4-4: easy to read off a log or a label and type
// on a phone, and with the login rate limit far beyond guessing.
func newPairCode() (string, error) {
	var sb strings.Builder
	for i := range 8 {
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

// pairCodeReader gives the pairing page the current setup code, reading the file again only when
// it was replaced or changed (one stat per request otherwise).
type pairCodeReader struct {
	path string
	last atomic.Pointer[pairCodeSeen]
}

type pairCodeSeen struct {
	info os.FileInfo
	code string
}

func newPairCodeReader(dataDir string) *pairCodeReader {
	return &pairCodeReader{path: filepath.Join(dataDir, pairCodeFile)}
}

// Code returns the code in the file now. A missing or empty file is an error: nobody logs in
// until `camgate pair-code` makes a new one.
func (r *pairCodeReader) Code() (string, error) {
	fi, err := os.Stat(r.path)
	if err != nil {
		return "", fmt.Errorf("setup code: %w", err)
	}
	if p := r.last.Load(); p != nil && os.SameFile(p.info, fi) && p.info.ModTime().Equal(fi.ModTime()) &&
		p.info.Size() == fi.Size() {
		return p.code, nil
	}
	code, err := readPairCode(r.path)
	if err != nil {
		return "", err
	}
	// Replaced between the stat and the read: the next call sees another file and reads again.
	r.last.Store(&pairCodeSeen{info: fi, code: code})
	return code, nil
}
