package testtool

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sbinDirs are searched after $PATH: an ordinary user's $PATH often leaves them out, yet the
// daemons the tests talk to are installed there.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// Need returns the path of the first of names that is installed: a real peer program a test
// talks to. When none is, the test fails under CI=true, naming the Debian package to install,
// and is skipped elsewhere.
func Need(t testing.TB, debianPackage string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, name := range names {
		for _, dir := range sbinDirs {
			if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: install the Debian package %s", names[0], debianPackage)
	}
	t.Skipf("%s not found (Debian package %s)", names[0], debianPackage)
	return ""
}
