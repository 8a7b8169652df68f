package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/camgate/camgate/agent"
	"github.com/camgate/camgate/store"
)

// cmdOutbox inspects the durable queue: through the running daemon's control socket when it
// runs (it holds the database), else by opening the database itself.
func cmdOutbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	action := "stats"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	fs := newFlagSet("outbox "+action, stderr)
	path := fs.String("c", "", "config file (default "+agent.DefaultConfigPath+")")
	queue := fs.String("queue", "", "one queue (mqtt, sink:…); default every queue")
	max := fs.Int("max", 50, "list: messages per queue")
	asJSON := fs.Bool("json", false, "print JSON")
	yes := fs.Bool("yes", false, "purge: do it without asking")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch action {
	case "stats", "list", "purge":
	default:
		return usagef("outbox: unknown action %q: stats, list or purge", action)
	}
	if action == "purge" && !*yes {
		return usagef("outbox purge deletes queued messages for good: add --yes (and --queue Q for one queue)")
	}
	l, err := loadConfig(*path)
	if err != nil {
		return err
	}
	src, closeSrc, err := openOutbox(l.DataDir, l.Outbox.MaxBytes)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer closeSrc()
	switch action {
	case "stats":
		st, err := src.stats()
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		if *asJSON {
			return writeJSON(stdout, st)
		}
		printOutboxStats(stdout, st)
	case "list":
		list, err := src.list(*queue, *max)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		if *asJSON {
			return writeJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE\tSEQ\tCLASS\tENQUEUED\tBYTES\tTOPIC\tPAYLOAD")
		for _, e := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", e.Queue, e.Seq, e.Class, e.Enqueued.Local().Format(time.DateTime),
				e.Bytes, e.Topic, strings.ReplaceAll(e.Preview, "\n", " "))
		}
		tw.Flush()
	case "purge":
		n, err := src.purge(*queue)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		fmt.Fprintf(stdout, "purged %d messages\n", n)
	}
	return nil
}

func printOutboxStats(w io.Writer, st store.OutboxStats) {
	fmt.Fprintf(w, "depth %d messages, %d of %d bytes (%.1f%%)\n", st.Depth, st.Bytes, st.MaxBytes,
		100*float64(st.Bytes)/float64(max(st.MaxBytes, 1)))
	fmt.Fprintf(w, "dropped since created: %d telemetry, %d events\n", st.DroppedTelemetry, st.DroppedEvents)
	names := make([]string, 0, len(st.Queues))
	for q := range st.Queues {
		names = append(names, q)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tDEPTH\tBYTES\tOLDEST")
	for _, q := range names {
		qs := st.Queues[q]
		oldest := "-"
		if !qs.Oldest.IsZero() {
			oldest = qs.Oldest.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", q, qs.Depth, qs.Bytes, oldest)
	}
	tw.Flush()
}

// outboxSource is the outbox as the daemon's socket or the database file offers it.
type outboxSource struct {
	stats func() (store.OutboxStats, error)
	list  func(queue string, max int) ([]agent.OutboxEntry, error)
	purge func(queue string) (int, error)
}

func openOutbox(dataDir string, maxBytes int64) (outboxSource, func(), error) {
	if c, err := agent.ControlClient(dataDir); err == nil {
		return daemonOutbox(c), func() {}, nil
	}
	db, err := store.Open(filepath.Join(dataDir, "camgate.db"), store.Options{OutboxMaxBytes: maxBytes})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return outboxSource{}, nil, fmt.Errorf("the daemon holds the database but its control socket does not answer: %w",
				err)
		}
		return outboxSource{}, nil, err
	}
	ob := db.Outbox()
	return outboxSource{
		stats: func() (store.OutboxStats, error) { return ob.Stats(), nil },
		list:  func(q string, n int) ([]agent.OutboxEntry, error) { return agent.OutboxList(ob, q, n) },
		purge: ob.Purge,
	}, func() { db.Close() }, nil
}

func daemonOutbox(c *http.Client) outboxSource {
	call := func(method, path string, v any) error {
		req, _ := http.NewRequest(method, "http://camgate"+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("daemon: %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	return outboxSource{
		stats: func() (st store.OutboxStats, err error) { return st, call("GET", "/outbox/stats", &st) },
		list: func(q string, n int) (l []agent.OutboxEntry, err error) {
			return l, call("GET", fmt.Sprintf("/outbox/list?queue=%s&max=%d", url.QueryEscape(q), n), &l)
		},
		purge: func(q string) (int, error) {
			var r struct{ Purged int }
			err := call("POST", "/outbox/purge?queue="+url.QueryEscape(q), &r)
			return r.Purged, err
		},
	}
}
