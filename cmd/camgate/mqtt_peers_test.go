package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mosquittoPath finds the broker, which Debian installs in /usr/sbin (often off a user's PATH).
func mosquittoPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	needTool(t, "mosquitto", "mosquitto")
	return ""
}

// broker is a real mosquitto on a loopback port, with persistence so that a subscriber's session
// and its queued messages survive a restart, as a production broker's would.
type broker struct {
	port int
	dir  string
	proc *proc
}

func startBroker(t *testing.T, port int, dir string) *broker {
	t.Helper()
	bin := mosquittoPath(t)
	if dir == "" {
		dir = t.TempDir()
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	// Started as root, mosquitto drops to the "mosquitto" user, who cannot write its persistence
	// file in the test's private directory; keep it as whoever runs the test.
	asUser := ""
	if os.Geteuid() == 0 {
		asUser = "user root\n"
	}
	os.WriteFile(conf, []byte(fmt.Sprintf(asUser+`listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
max_queued_messages 0
max_inflight_messages 0
`, port, dir)), 0o600)
	b := &broker{port: port, dir: dir, proc: start(t, bin, "-c", conf)}
	waitFor(t, 10*time.Second, "mosquitto to listen", func() bool { return dialable(port) })
	return b
}

func (b *broker) stop(t *testing.T) { b.proc.stop(t, syscall.SIGTERM, 10*time.Second) }

func (b *broker) url() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", b.port) }

// mqttMessage is one message as mosquitto_sub printed it.
type mqttMessage struct {
	Retained bool
	Topic    string
	Payload  []byte
}

// subscriber collects what a real mosquitto_sub receives. With a client id it keeps a persistent
// session (QoS 1), so nothing sent while it is disconnected is lost.
type subscriber struct {
	mu   sync.Mutex
	msgs []mqttMessage
}

func subscribe(t *testing.T, port int, clientID string, topics ...string) *subscriber {
	t.Helper()
	bin := needTool(t, "mosquitto_sub", "mosquitto-clients")
	args := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-q", "1", "-F", "%r %t %x"}
	if clientID != "" {
		args = append(args, "-c", "-i", clientID)
	}
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &subscriber{}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			parts := strings.SplitN(sc.Text(), " ", 3)
			if len(parts) < 2 {
				continue
			}
			m := mqttMessage{Retained: parts[0] == "1", Topic: parts[1]}
			if len(parts) == 3 {
				m.Payload, _ = hex.DecodeString(parts[2])
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *subscriber) all() []mqttMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mqttMessage(nil), s.msgs...)
}

// last returns the latest message on topic.
func (s *subscriber) last(topic string) (mqttMessage, bool) {
	all := s.all()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Topic == topic {
			return all[i], true
		}
	}
	return mqttMessage{}, false
}

// retained asks the broker, as a new subscriber would, which retained messages it holds.
func retained(t *testing.T, port int, topic string) map[string][]byte {
	t.Helper()
	bin := needTool(t, "mosquitto_sub", "mosquitto-clients")
	out, _ := exec.Command(bin, "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", topic,
		"--retained-only", "-W", "1", "-F", "%r %t %x").Output()
	got := map[string][]byte{}
	for _, line := range strings.Split(string(out), "\n") {
		parts := strings.SplitN(line, " ", 3)
		if len(parts) == 3 && parts[0] == "1" {
			got[parts[1]], _ = hex.DecodeString(parts[2])
		}
	}
	return got
}

func publish(t *testing.T, port int, topic, payload string) {
	t.Helper()
	bin := needTool(t, "mosquitto_pub", "mosquitto-clients")
	if out, err := exec.Command(bin, "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-q", "1", "-t", topic, "-m", payload).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func dialable(port int) bool {
	c, err := netDial(port)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// sendAlarmMails delivers one "Motion Detection Alarm" mail per recipient over a single SMTP
// session, as a camera NVR would, and returns once the server accepted the last one (by then
// the agent has queued its event durably: the 250 waits for that).
func sendAlarmMails(t *testing.T, addr string, recipients []string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("smtp: %v", err)
	}
	defer c.Close()
	for i, rcpt := range recipients {
		if err := c.Mail("camera@example.com"); err != nil {
			t.Fatalf("mail %d: MAIL: %v", i, err)
		}
		if err := c.Rcpt(rcpt); err != nil {
			t.Fatalf("mail %d: RCPT: %v", i, err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatalf("mail %d: DATA: %v", i, err)
		}
		fmt.Fprintf(w, "From: camera@example.com\r\nTo: %s\r\nSubject: Motion Detection Alarm\r\n\r\nAlarm event: Motion Detection %d\r\n", rcpt, i)
		if err := w.Close(); err != nil {
			t.Fatalf("mail %d: end of DATA: %v", i, err)
		}
	}
	c.Quit()
}

// sendSnapshotMail delivers one alarm mail with a JPEG of the given size attached.
func sendSnapshotMail(t *testing.T, addr, rcpt string, jpegBytes int) {
	t.Helper()
	jpeg := make([]byte, jpegBytes)
	copy(jpeg, []byte{0xFF, 0xD8, 0xFF, 0xE0})
	for i := 4; i < len(jpeg)-2; i++ {
		jpeg[i] = byte(i*7 + i/251)
	}
	jpeg[len(jpeg)-2], jpeg[len(jpeg)-1] = 0xFF, 0xD9
	var body strings.Builder
	fmt.Fprintf(&body, "From: camera@example.com\r\nTo: %s\r\nSubject: Motion Detection Alarm\r\nMIME-Version: 1.0\r\n", rcpt)
	body.WriteString("Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nMotion detected\r\n")
	body.WriteString("--b1\r\nContent-Type: image/jpeg; name=snap.jpg\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=snap.jpg\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(jpeg)
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n--b1--\r\n")
	if err := smtp.SendMail(addr, nil, "camera@example.com", []string{rcpt}, []byte(body.String())); err != nil {
		t.Fatalf("snapshot mail: %v", err)
	}
}
