package netnstest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

const envVar = "CAMGATE_TEST_IN_NETNS"

// Run runs body in a fresh network namespace: a re-executed copy of the current test in which
// loopback is up, multicast-capable, routes 224.0.0.0/4, and carries addrs (IPv4, /24). In the
// parent it reports the child's result. Without the right to make namespaces it fails under
// CI=true and skips otherwise.
func Run(t *testing.T, addrs []string, body func(t *testing.T)) {
	t.Helper()
	if os.Getenv(envVar) == t.Name() {
		prepare(t, addrs)
		body(t)
		return
	}
	if _, err := exec.LookPath("ip"); err != nil {
		failOrSkip(t, "the ip command (Debian package iproute2) is needed to set up a network namespace")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1",
		"-test.timeout=300s")
	cmd.Env = append(os.Environ(), envVar+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	var pe *os.PathError
	if errors.As(err, &pe) || (err != nil && strings.Contains(err.Error(), "operation not permitted")) {
		failOrSkip(t, "cannot create a network namespace (needs root or CAP_SYS_ADMIN): "+err.Error())
	}
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in the network namespace: %v\n%s", err, out)
	}
	t.Logf("in the network namespace:\n%s", lastLines(string(out), 12))
}

// Inside reports whether the running test is the namespace child.
func Inside() bool { return os.Getenv(envVar) != "" }

func failOrSkip(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func prepare(t *testing.T, addrs []string) {
	t.Helper()
	// Refuse to send anything unless this really is a namespace holding nothing but loopback.
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Fatalf("not in a fresh network namespace (interfaces %v): refusing to send multicast", ifs)
	}
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "set", "lo", "up")
	run("link", "set", "lo", "multicast", "on")
	run("route", "add", "224.0.0.0/4", "dev", "lo")
	for _, a := range addrs {
		run("addr", "add", a+"/24", "dev", "lo")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
