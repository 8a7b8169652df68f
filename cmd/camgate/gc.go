package main

import (
	"os"
	"runtime/debug"
)

// runGCPercent is the collector's target for `camgate run`: the heap may grow by a quarter of
// what is live before a collection, instead of Go's default of as much again. The daemon keeps
// about 1 MiB live and its relays allocate nothing per packet, so collections are rare whatever
// the target, and each costs well under a millisecond; what the default costs is memory: with
// it the runtime lets a heap this small reach 4 MiB before collecting, and keeps the pages. On
// a gateway with little RAM the memory matters more (issue 15 acceptance 5 measures it).
const runGCPercent = 25

// tuneGC sets runGCPercent unless the operator set GOGC, whose word stands.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(runGCPercent)
	}
}
