package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// DefaultConfigPath is where `camgate run` looks when -c is not given.
const DefaultConfigPath = "/etc/camgate/camgate.yaml"

// Loaded is a config together with where it came from, for the log and for reloads.
type Loaded struct {
	Config
	Path     string   // the file read, "" when running on built-in defaults
	Notes    []string // things worth a log line: defaults used, data dir fallback, derived id
	Explicit bool     // the file was named on the command line
}

// LoadConfig reads path (or runs on defaults when the default path does not exist), applies the
// environment, derives what was left empty and validates. An explicitly named file that does not
// exist is an error; the default one missing is not.
func LoadConfig(path string, explicit bool, getenv func(string) string) (Loaded, error) {
	l := Loaded{Path: path, Explicit: explicit}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		l.Config, err = ParseConfig(data)
		if err != nil {
			return l, err
		}
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		l.Config = DefaultConfig()
		l.Path = ""
		l.Notes = append(l.Notes, fmt.Sprintf("no config file at %s: running on built-in defaults", path))
	default:
		return l, &ConfigError{Reason: fmt.Sprintf("cannot read %s: %v", path, err)}
	}
	l.ApplyEnv(getenv)
	if l.GatewayID == "" {
		id, how := DeriveGatewayID()
		l.GatewayID = id
		l.Notes = append(l.Notes, "gateway_id derived from "+how+": "+id)
	}
	if l.Path == "" && l.DataDir == DefaultDataDir && !writableDir(DefaultDataDir) {
		l.DataDir = "camgate-data"
		l.Notes = append(l.Notes, DefaultDataDir+" is not writable: keeping data in ./camgate-data")
	}
	if err := l.Validate(); err != nil {
		return l, err
	}
	return l, nil
}

// DeriveGatewayID makes a stable id from /etc/machine-id, else the first hardware address. The
// machine id is hashed, as systemd asks of applications, so that it is not exposed upstream.
func DeriveGatewayID() (id, how string) {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				m := hmac.New(sha256.New, []byte(s))
				m.Write([]byte("camgate gateway id"))
				return "gw-" + hex.EncodeToString(m.Sum(nil))[:12], p
			}
		}
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagLoopback == 0 && len(ifc.HardwareAddr) == 6 {
				return "gw-" + strings.ReplaceAll(ifc.HardwareAddr.String(), ":", ""), "the MAC of " + ifc.Name
			}
		}
	}
	return "gw-unknown", "nothing (no machine-id, no MAC)"
}

// writableDir tells whether the daemon could keep its data in dir, without creating it: a
// command that only reads the config must not leave directories behind.
func writableDir(dir string) bool {
	probe := dir
	if _, err := os.Stat(dir); err != nil {
		probe = filepath.Dir(dir)
	}
	f, err := os.CreateTemp(probe, ".camgate-probe-*")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return true
}

// dataPath joins a name onto the data dir.
func (c *Config) dataPath(name string) string { return filepath.Join(c.DataDir, name) }
