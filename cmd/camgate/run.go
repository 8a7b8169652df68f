package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/camgate/camgate/agent"
)

// newFlagSet makes a subcommand's flags report errors as usage errors (exit 2) instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("camgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageError{err}
		}
		return usagef("%v", err)
	}
	return nil
}

// loadConfig turns a config problem into exit status 2, as SPEC §1 asks.
func loadConfig(path string) (agent.Loaded, error) {
	explicit := path != ""
	if !explicit {
		path = agent.DefaultConfigPath
	}
	l, err := agent.LoadConfig(path, explicit, os.Getenv)
	if err != nil {
		return l, usageError{err}
	}
	return l, nil
}

func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	path := fs.String("c", "", "config file (default "+agent.DefaultConfigPath+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("run: unexpected argument %q", fs.Arg(0))
	}
	l, err := loadConfig(*path)
	if err != nil {
		return err
	}
	tuneGC()
	level := new(slog.LevelVar)
	log := newLogger(stderr, l.Log.Format, level)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	a := agent.New(l, agent.Options{Logger: log, LogLevel: level, Reload: reload, Version: version})
	if err := a.Run(ctx); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

func cmdPairCode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pair-code", stderr)
	path := fs.String("c", "", "config file (default "+agent.DefaultConfigPath+")")
	rotate := fs.Bool("rotate", false, "make a new code and end every session of the pairing page, "+
		"also in a running daemon")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("pair-code: unexpected argument %q", fs.Arg(0))
	}
	l, err := loadConfig(*path)
	if err != nil {
		return err
	}
	get := agent.PairCode
	if *rotate {
		get = agent.RotatePairCode
	}
	code, err := get(l.DataDir)
	if err != nil {
		return fmt.Errorf("pair-code: %w", err)
	}
	fmt.Fprintln(stdout, code)
	return nil
}
