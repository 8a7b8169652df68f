package uplink

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/testtool"
	"github.com/camgate/camgate/store"
)

// rabbit is a real RabbitMQ (Debian's rabbitmq-server) with its MQTT plugin: a broker built for
// clustering, the kind an operator runs in front of thousands of gateways. Everything it opens
// is on loopback: the MQTT listener, AMQP (which cannot be turned off entirely without the
// node refusing to boot in 3.10, so it gets a loopback port too), Erlang distribution and its own
// epmd, each on a free port so that parallel tests and other users of the machine do not meet.
type rabbit struct {
	t                                      testing.TB
	server, epmd                           string
	dir                                    string
	env                                    []string
	mqttPort, amqpPort, distPort, epmdPort int
	proc                                   *testtool.Process
}

func startRabbit(t testing.TB) *rabbit {
	t.Helper()
	// The unwrapped script: /usr/sbin/rabbitmq-server switches to the rabbitmq user, whose home
	// is not our temporary directory.
	server := testtool.Need(t, "rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
	epmd := testtool.Need(t, "erlang-base", "epmd", "/usr/lib/erlang/bin/epmd")
	dir := t.TempDir()
	r := &rabbit{t: t, server: server, epmd: epmd, dir: dir,
		mqttPort: freePort(t), amqpPort: freePort(t), distPort: freePort(t), epmdPort: freePort(t)}
	conf := fmt.Sprintf(`listeners.tcp.1 = 127.0.0.1:%d
mqtt.listeners.tcp.1 = 127.0.0.1:%d
mqtt.allow_anonymous = true
mqtt.vhost = /
mqtt.exchange = amq.topic
loopback_users = none
log.console = false
log.file.level = warning
`, r.amqpPort, r.mqttPort)
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[rabbitmq_mqtt].\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.env = append(os.Environ(),
		"HOME="+dir, // the Erlang cookie goes here
		"RABBITMQ_NODENAME=camgate-test@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", r.amqpPort),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", r.distPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		fmt.Sprintf("ERL_EPMD_PORT=%d", r.epmdPort),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbit.pid"),
	)
	r.start()
	t.Cleanup(func() {
		r.stop()
		// epmd outlives the node that started it; this one is ours (its own port).
		kill := exec.Command(r.epmd, "-port", fmt.Sprint(r.epmdPort), "-kill")
		kill.Env = r.env
		_ = kill.Run()
	})
	return r
}

func (r *rabbit) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.mqttPort) }

// asBroker lets the mosquitto_sub/mosquitto_pub helpers talk to RabbitMQ: they need only the port.
func (r *rabbit) asBroker() *broker { return &broker{t: r.t, port: r.mqttPort} }

func (r *rabbit) start() {
	r.t.Helper()
	cmd := exec.Command(r.server)
	cmd.Env = r.env
	cmd.Dir = r.dir
	// Its own process group, so that stop reaches the Erlang VM behind the shell script.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := testtool.StartProcess(cmd, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.proc = p
	if err := p.WaitListening(r.addr(), 120*time.Second); err != nil {
		r.t.Fatalf("RabbitMQ's MQTT listener: %v", err)
	}
}

// stop shuts the node down as a service manager does (SIGTERM makes the Erlang VM stop cleanly).
func (r *rabbit) stop() {
	if r.proc != nil {
		r.proc.Stop(syscall.SIGTERM, 60*time.Second)
		r.proc = nil
	}
}

// The end-to-end behaviour SPEC §6 needs from a broker, against RabbitMQ: the retained
// registration and its clearing, the Last Will on an abrupt loss, and QoS 1 delivery, in order,
// of everything queued during a broker outage.
func TestRabbitMQ(t *testing.T) {
	r := startRabbit(t)
	b := r.asBroker()
	p := startProxy(t, r.addr())
	q := newMemQueue()
	m := newTestMQTT(t, "mqtt://"+p.addr(), q, nil)
	runMQTT(t, m)
	status := subscribe(t, b, nil, prefix+"/status")
	eventually(t, "connected", 30*time.Second, m.Connected)

	t.Run("retained config and its clearing", func(t *testing.T) {
		config := `{"camera_id":"c1","agent_id":"0123456789"}`
		sendConfig(t, q, config)
		// Where RabbitMQ differs from mosquitto: its retained store is looked up by the exact
		// topic, so a subscription with a wildcard gets no retained messages at all (RabbitMQ's
		// MQTT plugin guide, "Retained Messages and Stores"). SC must subscribe to each exact
		// config topic, or get them otherwise.
		wild := subscribe(t, b, nil, prefix+"/cameras/#")
		config1 := prefix + "/cameras/c1/config"
		late := subscribe(t, b, nil, config1)
		eventually(t, "retained registration", 20*time.Second, func() bool {
			got := late.received(config1)
			return len(got) == 1 && got[0] == config
		})
		if got := wild.received(config1); len(got) != 0 {
			t.Logf("RabbitMQ now sends retained messages to wildcard subscriptions too (got %q): update README", got)
		}
		sendConfig(t, q, "")
		later := subscribe(t, b, nil, config1)
		if got := later.received(config1); len(got) != 0 {
			t.Errorf("after clearing, a new subscriber still gets %q", got)
		}
	})

	t.Run("last will on an abrupt loss", func(t *testing.T) {
		p.cut()
		eventually(t, "offline from the Last Will, then online again", 30*time.Second, func() bool {
			var seen []string
			for _, st := range statuses(t, status) {
				seen = append(seen, st.State)
			}
			s := strings.Join(seen, " ")
			return strings.Contains(s, "online offline online") && m.Connected()
		})
	})

	t.Run("QoS 1 delivery in order after a broker outage", func(t *testing.T) {
		sub := subscribe(t, b, []string{"-c", "-i", "camgate-test-sc"}, prefix+"/cameras/+/events")
		r.stop()
		eventually(t, "the client to notice the outage", 30*time.Second, func() bool { return !m.Connected() })
		numbered(t, q, 0, 500)
		r.start()
		eventually(t, "500 messages in order after the restart", 120*time.Second, func() bool {
			return checkInOrder(t, sub.received(prefix+"/cameras/c1/events"), 500)
		})
		eventually(t, "the outbox to empty", 30*time.Second, func() bool { return q.depth("mqtt") == 0 })
	})

	t.Run("retained Last Will", func(t *testing.T) {
		if got := retainedAfterLoss(t, b, p, m); got != "offline" {
			t.Errorf("retained status after an abrupt loss: %q, want offline", got)
		}
		eventually(t, "connected again", 30*time.Second, m.Connected)
	})

	t.Run("client id takeover", func(t *testing.T) {
		// Where RabbitMQ 3.10 differs from mosquitto: the connection it closes for the newer
		// one does not publish its Last Will, so SC sees no offline in between.
		if got := takeOver(t, r.addr(), m, status); got != "online" {
			t.Errorf("status after a client id takeover: %q, want %q (if RabbitMQ now publishes the Will, update README)",
				got, "online")
		}
	})

	t.Run("a 2 MiB retained snapshot", func(t *testing.T) {
		// smtp.MaxSnapshotBytes: the largest alarm JPEG camgate queues.
		snapshot := strings.Repeat("j", 2<<20)
		if err := q.Enqueue(context.Background(), "mqtt", store.Message{
			Class: store.ClassEvent, Topic: "cameras/c1/snapshot", Retain: true, Payload: []byte(snapshot),
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "snapshot sent", 30*time.Second, func() bool { return q.depth("mqtt") == 0 })
		topic := prefix + "/cameras/c1/snapshot"
		late := subscribe(t, b, nil, topic)
		eventually(t, "the retained snapshot, whole", 30*time.Second, func() bool {
			got := late.received(topic)
			return len(got) == 1 && got[0] == snapshot
		})
	})
}

// sendConfig queues camera c1's retained registration (an empty one clears it) and waits until
// the client has had it acknowledged.
func sendConfig(t *testing.T, q *memQueue, config string) {
	t.Helper()
	var payload []byte
	if config != "" {
		payload = []byte(config)
	}
	if err := q.Enqueue(context.Background(), "mqtt", store.Message{
		Class: store.ClassRegistration, Topic: "cameras/c1/config", Retain: true, Payload: payload,
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registration sent", 20*time.Second, func() bool { return q.depth("mqtt") == 0 })
}
