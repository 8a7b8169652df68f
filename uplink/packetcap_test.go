package uplink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mqttPacket frames one MQTT packet: type byte, remaining length (MQTT 3.1.1 §2.2.3), body.
func mqttPacket(typ byte, body []byte) []byte {
	return append(append([]byte{typ}, remainingLength(len(body))...), body...)
}

func remainingLength(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// pipeRead feeds stream to a packetCapConn in chunks of the given size and returns what the
// reader got and the error it ended with.
func pipeRead(t *testing.T, stream []byte, chunk, max int) ([]byte, error) {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		for s := stream; len(s) > 0; {
			k := min(chunk, len(s))
			if _, err := a.Write(s[:k]); err != nil {
				return
			}
			s = s[k:]
		}
		a.Close()
	}()
	c := newPacketCapConn(b, max)
	defer c.Close()
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			return got, err
		}
	}
}

func TestPacketCapConn(t *testing.T) {
	small := mqttPacket(0x30, bytes.Repeat([]byte("p"), 100))
	ping := []byte{0xd0, 0x00}
	atCap := mqttPacket(0x30, make([]byte, 300))
	overCap := append([]byte{0x30}, remainingLength(150<<20)...) // the header alone: 150 MB announced
	tests := []struct {
		name    string
		stream  []byte
		wantErr error
		passed  int // at most this many bytes reach the reader
	}{
		{"packets under the cap pass untouched", bytes.Join([][]byte{small, ping, small}, nil), nil, 2*len(small) + 2},
		{"a packet at the cap passes", atCap, nil, len(atCap)},
		{"a header over the cap closes before it is passed on", append(append([]byte{}, small...), overCap...),
			&PacketTooLargeError{}, len(small) + len(overCap) - 1},
		{"a fifth length byte is malformed", append(append([]byte{}, ping...), 0x30, 0x80, 0x80, 0x80, 0x80, 0x01),
			errMalformedLength, 2 + 5},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 1 << 16} {
			t.Run(fmt.Sprintf("%s/chunks of %d", tt.name, chunk), func(t *testing.T) {
				got, err := pipeRead(t, tt.stream, chunk, len(atCap)-3)
				var tooLarge *PacketTooLargeError
				switch {
				case tt.wantErr == nil && err != nil:
					t.Fatalf("err = %v", err)
				case errors.As(tt.wantErr, &tooLarge) && !errors.As(err, &tooLarge):
					t.Fatalf("err = %v, want a PacketTooLargeError", err)
				case errors.Is(tt.wantErr, errMalformedLength) && !errors.Is(err, errMalformedLength):
					t.Fatalf("err = %v, want %v", err, errMalformedLength)
				}
				// The reader never gets a bad header's whole length field, so it cannot act on it.
				if len(got) > tt.passed || tt.wantErr == nil && !bytes.Equal(got, tt.stream) {
					t.Fatalf("reader got %d bytes, want %d", len(got), tt.passed)
				}
			})
		}
	}
}

// FuzzPacketCapConn: however a stream is cut into reads, the verdict is the one for the whole
// stream, and no byte of a packet over the cap reaches the reader.
func FuzzPacketCapConn(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 'a', 'b', 'c', 0xd0, 0x00}, uint8(2))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		const max = 64
		whole := newPacketCapConn(nil, max)
		wholeErr := whole.scan(stream)
		cut := newPacketCapConn(nil, max)
		var cutErr error
		step := int(chunk%16) + 1
		for s := stream; len(s) > 0 && cutErr == nil; {
			k := min(step, len(s))
			cutErr = cut.scan(s[:k])
			s = s[k:]
		}
		if (wholeErr == nil) != (cutErr == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", wholeErr, step, cutErr)
		}
	})
}

// The RSS test runs the MQTT client in a child process (this test binary, re-run with
// rssChildEnv set) so that its VmHWM is the client's alone.
const rssChildEnv = "CAMGATE_TEST_MQTT_CHILD_BROKER"

// Issue 13 acceptance 5 (MQTT part): a real mosquitto relays a 150 MB PUBLISH to the gateway's
// command topic. The client's peak RSS stays under 64 MB, the connection is closed saying why,
// and the client reconnects and answers commands again.
func TestHugePublishClosesTheConnectionNotTheMemory(t *testing.T) {
	b := startBroker(t, "")
	sub := subscribe(t, b, nil, prefix+"/cmd/+/reply")
	child := exec.Command(os.Args[0], "-test.run=^TestHugePublishClosesTheConnectionNotTheMemory$")
	child.Env = append(os.Environ(), rssChildEnv+"="+b.addr())
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	lastErrs := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "last_error: "); ok {
				lastErrs <- s
			}
		}
	}()
	echoed := func(id string) func() bool {
		return func() bool {
			sendCommand(t, b, "echo", []byte(`{"id":"`+id+`"}`))
			time.Sleep(200 * time.Millisecond)
			for _, r := range replies(t, sub, "echo") {
				if r.ID == id {
					return true
				}
			}
			return false
		}
	}
	eventually(t, "the child's command subscription", 30*time.Second, echoed("before"))
	before := vmHWM(t, child.Process.Pid)

	publishStreamed(t, b.addr(), prefix+"/cmd/add_camera", 150<<20)
	select {
	case e := <-lastErrs:
		if !strings.Contains(e, "cap") {
			t.Errorf("last_error %q does not say the packet was over the cap", e)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the connection was not closed")
	}
	eventually(t, "commands answered after the reconnect", 60*time.Second, echoed("after"))
	peak := vmHWM(t, child.Process.Pid)
	t.Logf("child VmHWM %d KiB before, %d KiB after the 150 MB PUBLISH", before>>10, peak>>10)
	if peak >= 64<<20 {
		t.Fatalf("peak RSS %d MiB, want under 64", peak>>20)
	}
}

// TestMain runs the RSS test's child when rssChildEnv is set.
func TestMain(m *testing.M) {
	if addr := os.Getenv(rssChildEnv); addr != "" {
		os.Exit(runMQTTChild(addr))
	}
	os.Exit(m.Run())
}

// runMQTTChild connects an MQTT client that echoes commands and prints each new last error.
func runMQTTChild(addr string) int {
	m, err := NewMQTT(MQTTConfig{URL: "mqtt://" + addr, TopicPrefix: prefix, Version: "1.2.3", Queue: "mqtt",
		Commands: &commands{}, Logger: nil}, newMemQueue())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m.retryMin, m.retryMax = 50*time.Millisecond, 500*time.Millisecond
	go func() { _ = m.Run(context.Background()) }()
	last := ""
	for range time.Tick(20 * time.Millisecond) {
		if e := m.LastError(); e != last && e != "" {
			fmt.Println("last_error: " + e)
			last = e
		} else if e == "" {
			last = ""
		}
	}
	return 0
}

// publishStreamed publishes size bytes at QoS 0 as a plain MQTT 3.1.1 client, writing the
// payload as it goes so the test itself holds none of it.
func publishStreamed(t *testing.T, addr, topic string, size int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connect := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 4}, "huge"...)
	if _, err := c.Write(mqttPacket(0x10, connect)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	head := append([]byte{0x30}, remainingLength(2+len(topic)+size)...)
	head = append(append(head, byte(len(topic)>>8), byte(len(topic))), topic...)
	if _, err := c.Write(head); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for left := size; left > 0; left -= len(zeros) {
		if _, err := c.Write(zeros[:min(left, len(zeros))]); err != nil {
			t.Fatalf("writing the payload: %v", err)
		}
	}
	_, _ = c.Write([]byte{0xe0, 0x00}) // DISCONNECT after the broker has read it all
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

// vmHWM returns a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}
