package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/smtp"
	"os/exec"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/testtool"
)

// broker is a real mosquitto on a loopback port, with persistence so that a subscriber's session
// and its queued messages survive a restart, as a production broker's would.
type broker struct {
	port int
	dir  string
	m    *testtool.Mosquitto
}

// startBroker runs a broker on port (0: a free one) keeping its database in dir (empty: a new
// temporary directory), so that a second call with the same port and dir is the broker back.
func startBroker(t *testing.T, port int, dir string) *broker {
	t.Helper()
	m := testtool.StartMosquitto(t, testtool.MosquittoConfig{Port: port, Dir: dir, Persist: true,
		Settings: "max_inflight_messages 0"})
	return &broker{port: m.Port, dir: m.Dir, m: m}
}

func (b *broker) stop(*testing.T) { b.m.Stop() }

func (b *broker) url() string { return b.m.URL() }

// mqttMessage is one message as mosquitto_sub printed it.
type mqttMessage struct {
	Retained bool
	Topic    string
	Payload  []byte
}

// subscriber collects what a real mosquitto_sub receives. With a client id it keeps a persistent
// session (QoS 1), so nothing sent while it is disconnected is lost.
type subscriber struct {
	*testtool.Subscriber
}

func subscribe(t *testing.T, port int, clientID string, topics ...string) *subscriber {
	t.Helper()
	args := []string{"-q", "1", "-F", "%r %t %x"}
	if clientID != "" {
		args = append(args, "-c", "-i", clientID)
	}
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	return &subscriber{testtool.Subscribe(t, port, args...)}
}

func (s *subscriber) all() []mqttMessage {
	var msgs []mqttMessage
	for _, line := range s.Lines() {
		parts := strings.SplitN(line, " ", 3)
		if len(parts) < 2 {
			continue
		}
		m := mqttMessage{Retained: parts[0] == "1", Topic: parts[1]}
		if len(parts) == 3 {
			m.Payload, _ = hex.DecodeString(parts[2])
		}
		msgs = append(msgs, m)
	}
	return msgs
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
	if err := testtool.Publish(t, port, "-q", "1", "-t", topic, "-m", payload); err != nil {
		t.Fatal(err)
	}
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
		fmt.Fprintf(w,
			"From: camera@example.com\r\nTo: %s\r\nSubject: Motion Detection Alarm\r\n\r\nAlarm event: Motion Detection %d\r\n",
			rcpt, i)
		if err := w.Close(); err != nil {
			t.Fatalf("mail %d: end of DATA: %v", i, err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
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
	fmt.Fprintf(&body, "From: camera@example.com\r\nTo: %s\r\nSubject: Motion Detection Alarm\r\nMIME-Version: 1.0\r\n",
		rcpt)
	body.WriteString("Content-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nMotion detected\r\n")
	body.WriteString("--b1\r\nContent-Type: image/jpeg; name=snap.jpg\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=snap.jpg\r\n\r\n")
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
