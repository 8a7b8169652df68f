package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/camgate/camgate/onvif"
	"github.com/camgate/camgate/rtsp"
)

func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", stderr)
	user := fs.String("user", "", "camera username")
	pass := fs.String("password", "", "camera password")
	dur := fs.Duration("duration", 4*time.Second, "how long to read media")
	asJSON := fs.Bool("json", false, "print JSON")
	// The URL may come before or after the flags: people type it both ways.
	var target string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
	}
	switch {
	case target == "":
		return usagef("probe: give an rtsp:// URL or onvif://host[:port]")
	case strings.HasPrefix(target, "onvif://"):
		return probeONVIF(ctx, target, *user, *pass, *dur, *asJSON, stdout)
	case strings.HasPrefix(target, "rtsp://"), strings.HasPrefix(target, "rtsps://"):
	default:
		return usagef("probe: %q: give an rtsp://, rtsps:// or onvif:// URL", target)
	}
	if u, err := url.Parse(target); err == nil && u.Scheme == "rtsp" && (u.Path == "" || u.Path == "/") &&
		u.RawQuery == "" {
		// Only an address: find the stream path as the daemon would.
		found, err := rtsp.FindStream(ctx, target, *user, *pass, rtsp.FindStreamOptions{})
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		fmt.Fprintf(stdout, "stream found at %s (%s)\n", found.URL, found.Vendor)
		target = found.URL
	}
	res, err := rtsp.Probe(ctx, target, *user, *pass, *dur)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if *asJSON {
		return writeJSON(stdout, res)
	}
	printTracks(stdout, res)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTracks(w io.Writer, res rtsp.ProbeResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRACK\tCODEC\tCLOCK\tRESOLUTION\tFPS\tBITRATE\tPACKETS")
	for _, t := range res.Tracks {
		resolution, fps := "-", "-"
		if t.Type == "video" {
			resolution = fmt.Sprintf("%dx%d", t.Width, t.Height)
			fps = fmt.Sprintf("%.1f", t.FPS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d kbit/s\t%d\n", t.Type, t.Codec, t.ClockRate, resolution, fps,
			t.BitrateBps/1000, t.Packets)
	}
	tw.Flush()
	fmt.Fprintf(w, "media read for %s\n", res.Duration.Round(100*time.Millisecond))
}

// probeONVIF asks the device for its streams, then probes the main stream like an rtsp:// URL.
func probeONVIF(ctx context.Context, target, user, pass string, dur time.Duration, asJSON bool, w io.Writer) error {
	hostport := strings.TrimSuffix(strings.TrimPrefix(target, "onvif://"), "/")
	if hostport == "" {
		return usagef("probe: %q has no host", target)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
	}
	client, err := onvif.NewClient(onvif.ClientConfig{XAddr: "http://" + hostport + "/onvif/device_service",
		Username: user, Password: pass})
	if err != nil {
		return usagef("probe: %v", err)
	}
	dev, err := onvif.Inventory(ctx, client)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	var res rtsp.ProbeResult
	var probeErr error
	if dev.MainStream != "" {
		res, probeErr = rtsp.Probe(ctx, dev.MainStream, user, pass, dur)
	} else {
		probeErr = fmt.Errorf("the device reported no RTSP stream")
	}
	if asJSON {
		out := struct {
			Device onvif.Device      `json:"device"`
			Media  *rtsp.ProbeResult `json:"media,omitempty"`
			Error  string            `json:"error,omitempty"`
		}{Device: dev}
		if probeErr == nil {
			out.Media = &res
		} else {
			out.Error = probeErr.Error()
		}
		if err := writeJSON(w, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "%s %s (firmware %s, serial %s, MAC %s)\nclock offset %s\n", dev.Manufacturer, dev.Model, dev.Firmware,
			dev.Serial, dev.MAC, dev.ClockOffset.Round(time.Second))
		for _, p := range dev.Profiles {
			fmt.Fprintf(w, "profile %s (%s): %s %dx%d %.0f fps %d kbit/s\n  stream   %s\n  snapshot %s\n", p.Token, p.Name,
				p.Codec, p.Width, p.Height, p.FPS, p.BitrateKbps, p.StreamURI, p.SnapshotURI)
		}
		if probeErr == nil {
			fmt.Fprintf(w, "main stream %s:\n", dev.MainStream)
			printTracks(w, res)
		}
	}
	if probeErr != nil {
		return fmt.Errorf("probe: main stream: %w", probeErr)
	}
	return nil
}
