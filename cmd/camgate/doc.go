// Command camgate is the gateway daemon and its operator tools: run (the daemon, SIGHUP reloads
// its config), demo (the whole pipeline on loopback with simulated cameras; left out of the
// router build by the nodemo tag), discover, probe, outbox (stats, list, purge), pair-code,
// selftest and version.
//
// This package holds flags and subcommands only: it parses the command line, builds an
// agent.Config and calls into agent, or calls one protocol package for a one-shot tool. It must
// not contain protocol logic or decisions, and nothing imports it.
package main
