//go:build nodemo

package main

import (
	"context"
	"errors"
	"io"
)

// Router builds (the OpenWrt packages, make cross for mipsle) leave the demo out: its simulated
// cameras, ONVIF device and embedded clip would take flash the gateway needs. The demo is for
// evaluating camgate on a PC.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("demo: this build for a gateway leaves the demo out to save flash; run `make demo` on a PC")
}
