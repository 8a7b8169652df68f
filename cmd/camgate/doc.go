// Command camgate is the gateway daemon and its operator tools.
//
// This package holds flags and subcommands only: it parses the command line, builds an
// agent.Config and calls into agent. It must not contain protocol logic or decisions.
package main
