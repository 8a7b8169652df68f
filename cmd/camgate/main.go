package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/emersion/go-message"

	"github.com/camgate/camgate/smtp"
)

// Stamped by the linker (-X main.version=... in the Makefile and packaging).
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

// usageError marks a bad command line or config: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

const usageText = `camgate — camera gateway daemon

Usage:
  camgate run [-c FILE]                 run the daemon (default config /etc/camgate/camgate.yaml)
  camgate demo                          the whole pipeline on loopback with simulated cameras
  camgate discover [--json] [--timeout D] [--user U --password P] [--interfaces I,J] [--no-mdns]
  camgate probe URL [--user U --password P]
  camgate outbox [stats|list|purge] [-c FILE] [--queue Q] [--json] [--yes]
  camgate pair-code [-c FILE] [--rotate]
  camgate selftest [--data-dir DIR]     open the store, enqueue and drain a message
  camgate version
`

func main() {
	// go-message decodes mail headers and bodies through this one process-wide hook; camgate's
	// own reader carries only the charsets cameras use (see smtp.CharsetReader).
	message.CharsetReader = smtp.CharsetReader
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "camgate:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "camgate %s (commit %s, built %s, %s/%s, %s)\n",
			version, commit, date, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stderr)
	case "pair-code":
		return cmdPairCode(rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "probe":
		return cmdProbe(ctx, rest, stdout, stderr)
	case "discover":
		return cmdDiscover(ctx, rest, stdout, stderr)
	case "outbox":
		return cmdOutbox(ctx, rest, stdout, stderr)
	case "selftest":
		return cmdSelftest(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usageText)
	return usagef("unknown command %q", cmd)
}
