package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// payload is the event BenchmarkDrainQoS1 drains.
const payload = `{"event":"stream_motion_started","event_id":"0123456789abcdef","media":"gw1-porch",` +
	`"utc_ms":1732400000000,"server":"gw1","motion_id":"6f1c2a4e-0000-4000-8000-000000000000",` +
	`"motion_data":"smtp: Motion Detection Alarm"}`

func main() {
	n := flag.Int("n", 20000, "messages")
	rounds := flag.Int("rounds", 3, "times to publish them, each with a fresh broker")
	flag.Parse()
	for range *rounds {
		if err := run(*n); err != nil {
			log.Fatal(err)
		}
	}
}

func run(n int) error {
	broker, err := lookPath("/usr/sbin/mosquitto", "mosquitto")
	if err != nil {
		return err
	}
	pub, err := lookPath("/usr/bin/mosquitto_pub", "mosquitto_pub")
	if err != nil {
		return errors.New("mosquitto_pub not found: install the Debian package mosquitto-clients")
	}
	dir, err := os.MkdirTemp("", "camgate-bench-mqtt")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	addr, err := freePort()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\n"),
		0o600); err != nil {
		return err
	}
	b := exec.Command(broker, "-c", conf)
	if err := b.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	defer func() { _ = b.Process.Kill(); _ = b.Wait() }() // the broker is killed, so Wait reports that
	if err := waitDial(addr, 10*time.Second); err != nil {
		return fmt.Errorf("mosquitto did not listen on %s: %w", addr, err)
	}

	lines := filepath.Join(dir, "events.txt")
	f, err := os.Create(lines)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for range n {
		_, _ = w.WriteString(payload + "\n") // a write error sticks: Flush below reports it
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()

	in, err := os.Open(lines)
	if err != nil {
		return err
	}
	defer in.Close()
	cmd := exec.Command(pub, "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", "camgate/bench/cameras/c1/events", "-l")
	cmd.Stdin = in
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mosquitto_pub: %w: %s", err, stderr.String())
	}
	elapsed := time.Since(start)
	fmt.Printf("mosquitto_pub -l -q 1: %d msgs in %s = %.0f msgs/s\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return nil
}

func lookPath(abs, name string) (string, error) {
	if _, err := os.Stat(abs); err == nil {
		return abs, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: install the Debian package mosquitto", name)
	}
	return p, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitDial(addr string, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(end) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
