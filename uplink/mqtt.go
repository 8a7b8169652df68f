package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/camgate/camgate/store"
)

// MQTTConfig configures the connection to Eltex SC (SPEC §6).
type MQTTConfig struct {
	URL                       string // mqtt://, mqtts://, ws://, wss://
	Username, Password        string
	CAFile, CertFile, KeyFile string // PEM; CAFile empty = the system roots
	ClientID                  string // empty = TopicPrefix with "/" turned into "-" ("camgate-gw1")
	TopicPrefix               string // already expanded, e.g. "camgate/gw1"
	Version                   string // camgate version for the status payload
	Queue                     string // outbox queue to drain, e.g. "mqtt"
	Commands                  CommandHandler
	Logger                    *slog.Logger // nil = slog.Default()
}

// CommandHandler runs the commands SC sends on P/cmd/<name>.
type CommandHandler interface {
	// HandleCommand runs one command (name = topic suffix after P/cmd/, payload = the JSON object
	// with "id"). The returned fields are merged into the reply {"id","ok":true,...}; an error
	// makes {"id","ok":false,"error":err.Error()}.
	HandleCommand(ctx context.Context, name string, payload json.RawMessage) (map[string]any, error)
}

// Tuning. The window keeps enough PUBLISHes in flight that a loopback broker is limited by its
// own speed, not by round trips; the waits are generous because gateways' uplinks are slow.
const (
	maxWindow         = 1024             // messages in flight; each outbox Ack is an fsync, so fewer is slower
	windowBytes       = 4 << 20          // payload bytes in flight, so that queued snapshots do not fill RAM
	ackTimeout        = 30 * time.Second // a PUBACK slower than this means the connection is dead
	controlTimeout    = 10 * time.Second // CONNECT, SUBSCRIBE, status publish
	offlineTimeout    = 2 * time.Second  // the goodbye on shutdown must not hold the agent up
	maxCommandBytes   = 64 << 10
	maxCommandsAtOnce = 8
	commandTimeout    = 30 * time.Second
)

// MQTT keeps one connection to the broker, drains an outbox queue into it and serves commands.
//
// The outbox, not paho, is the source of truth: paho runs with a clean session, no automatic
// reconnect and an in-memory store, and a message is acknowledged in the outbox only after its
// PUBACK arrived on the connection that is still current. After any reconnect everything not yet
// acknowledged is sent again, in order, so delivery is at least once.
type MQTT struct {
	cfg      MQTTConfig
	broker   *url.URL
	tls      *tls.Config
	clientID string
	prefix   string
	log      *slog.Logger
	q        Queue

	// Tests shorten these. retryMin and retryMax bound the waits between attempts during the
	// first spreadAfter of an outage; after that the fleet spreads itself over up to spreadMax
	// (see reconnectPolicy) and catches up at pace.
	retryMin, retryMax     time.Duration
	spreadAfter, spreadMax time.Duration
	pace                   drainPace
	cmdTimeout             time.Duration

	cmdSlots  chan struct{}
	connected atomic.Bool
	mu        sync.Mutex
	lastErr   string
}

// NewMQTT checks cfg (URL, TLS files) and returns a client that drains cfg.Queue of q once Run is
// called.
func NewMQTT(cfg MQTTConfig, q Queue) (*MQTT, error) {
	if q == nil {
		return nil, errors.New("mqtt: no outbox")
	}
	if cfg.Queue == "" {
		return nil, errors.New("mqtt: no outbox queue named")
	}
	prefix := strings.TrimSuffix(cfg.TopicPrefix, "/")
	if err := checkTopic(prefix); err != nil {
		return nil, fmt.Errorf("mqtt: topic_prefix: %w", err)
	}
	u, err := brokerURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Username == "" && u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	u.User = nil
	var tlsCfg *tls.Config
	if u.Scheme == "mqtts" || u.Scheme == "wss" {
		if tlsCfg, err = loadTLS(cfg, u.Hostname()); err != nil {
			return nil, err
		}
	} else if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		return nil, fmt.Errorf("mqtt: ca_file/cert_file/key_file are set but url scheme %s is not TLS (use mqtts or wss)",
			u.Scheme)
	}
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = strings.ReplaceAll(prefix, "/", "-")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &MQTT{
		cfg:         cfg,
		broker:      u,
		tls:         tlsCfg,
		clientID:    clientID,
		prefix:      prefix,
		log:         log.With("broker", u.String(), "queue", cfg.Queue),
		q:           q,
		retryMin:    500 * time.Millisecond,
		retryMax:    5 * time.Second,
		spreadAfter: time.Minute,
		spreadMax:   5 * time.Minute,
		pace:        catchUpPace(),
		cmdTimeout:  commandTimeout,
		cmdSlots:    make(chan struct{}, maxCommandsAtOnce),
	}, nil
}

// brokerURL parses and completes the broker address: paho needs an explicit port.
func brokerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("mqtt: url: %w", err)
	}
	ports := map[string]string{"mqtt": "1883", "mqtts": "8883", "ws": "80", "wss": "443"}
	port, ok := ports[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("mqtt: url %s: scheme must be mqtt, mqtts, ws or wss", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("mqtt: url %s: no host", u.Redacted())
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

func loadTLS(cfg MQTTConfig, serverName string) (*tls.Config, error) {
	c := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt: ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case cfg.CertFile != "" || cfg.KeyFile != "":
		return nil, errors.New("mqtt: cert_file and key_file must be set together")
	}
	return c, nil
}

// checkTopic accepts a topic name that can be published to: publishing to a wildcard or an empty
// topic makes a broker drop the connection, which would repeat on every resend.
func checkTopic(t string) error {
	switch {
	case t == "":
		return errors.New("empty topic")
	case len(t) > 65535:
		return errors.New("topic longer than 65535 bytes")
	case !utf8.ValidString(t):
		return errors.New("topic is not UTF-8")
	case strings.ContainsAny(t, "+#\x00"):
		return fmt.Errorf("topic %q holds a wildcard or NUL", t)
	}
	return nil
}

// Connected reports whether the client holds a live connection to the broker.
func (m *MQTT) Connected() bool { return m.connected.Load() }

// LastError describes the latest connection or delivery failure; empty once connected again.
func (m *MQTT) LastError() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

func (m *MQTT) setLastError(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = s
}

// Run connects, drains the queue and serves commands until ctx ends, reconnecting as
// reconnectPolicy says: quickly during the first minute of an outage, then spread over a window
// that grows with the outage, so that a fleet does not come back all in the same second; after
// such a long outage the backlog is drained at a pace. On the way out it publishes status
// offline and disconnects cleanly.
func (m *MQTT) Run(ctx context.Context) error {
	handlers := &inflight{}
	defer handlers.close()
	policy := newReconnectPolicy(m.retryMin, m.retryMax, m.spreadAfter, m.spreadMax)
	down := time.Now() // the broker has been out of reach since
	for {
		start := time.Now()
		err := m.session(ctx, handlers, policy.spreading(start.Sub(down)))
		if ctx.Err() != nil {
			return nil
		}
		// A connection that stayed up for a while ended the outage; a shorter one (a broker
		// that accepts and drops us) does not, so a flapping broker is spread over too.
		if time.Since(start) > time.Minute {
			policy.reset()
			down = time.Now()
		}
		d := policy.delay(time.Since(down))
		m.setLastError(err.Error())
		m.log.Warn("mqtt connection failed, will retry",
			"err", err, "retry_in", d, "outage", time.Since(down).Round(time.Second))
		if !sleep(ctx, d) {
			return nil
		}
	}
}

func (m *MQTT) statusPayload(state string) []byte {
	ts := time.Now().UnixMilli()
	b, err := json.Marshal(struct {
		State   string `json:"state"`
		Version string `json:"version"`
		TS      int64  `json:"ts"`
	}{state, m.cfg.Version, ts})
	if err != nil { // strings and an integer, so not seen; the state must still reach SC
		m.log.Error("encoding the status message", "err", err)
		return fmt.Appendf(nil, `{"state":%q,"ts":%d}`, state, ts)
	}
	return b
}

// session runs one connection from CONNECT to its loss or to the end of ctx; catchUp paces the
// drain of what the outbox holds when it begins.
func (m *MQTT) session(ctx context.Context, handlers *inflight, catchUp bool) error {
	lost := make(chan struct{})
	var lostErr atomic.Pointer[error]
	var once sync.Once
	statusTopic := m.prefix + "/status"

	opts := paho.NewClientOptions().
		AddBroker(m.broker.String()).
		SetClientID(m.clientID).
		SetUsername(m.cfg.Username).
		SetPassword(m.cfg.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetStore(paho.NewMemoryStore()).
		SetOrderMatters(false).
		SetProtocolVersion(4).
		SetKeepAlive(30*time.Second).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(controlTimeout).
		SetCustomOpenConnectionFn(capOpenConnection(maxPacketBytes)).
		SetWriteTimeout(controlTimeout).
		SetBinaryWill(statusTopic, m.statusPayload("offline"), 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			lostErr.Store(&err)
			once.Do(func() { close(lost) })
		})
	if m.tls != nil {
		opts.SetTLSConfig(m.tls.Clone())
	}
	c := paho.NewClient(opts)
	if err := wait(ctx, c.Connect(), controlTimeout, nil); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("mqtt: %s", describeConnectError(err, m.tls != nil))
	}
	m.connected.Store(true)
	defer m.connected.Store(false)
	m.setLastError("")
	m.log.Info("mqtt connected", "client_id", m.clientID)

	if err := wait(ctx, c.Publish(statusTopic, 1, true, m.statusPayload("online")), controlTimeout, lost); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("mqtt: publish status: %w", err)
	}
	if m.cfg.Commands != nil {
		cmdCtx, stop := context.WithCancel(ctx)
		defer stop()
		onCommand := func(c paho.Client, msg paho.Message) {
			m.command(cmdCtx, handlers, c, msg.Topic(), msg.Payload())
		}
		if err := wait(ctx, c.Subscribe(m.prefix+"/cmd/+", 1, onCommand), controlTimeout, lost); err != nil {
			c.Disconnect(0)
			return fmt.Errorf("mqtt: subscribe to commands: %w", err)
		}
	}

	err := m.drain(ctx, c, lost, catchUp)
	if ctx.Err() != nil {
		// Say goodbye explicitly: a clean DISCONNECT does not fire the Last Will.
		_ = wait(context.WithoutCancel(ctx), c.Publish(statusTopic, 1, true, m.statusPayload("offline")),
			offlineTimeout, lost)
		c.Disconnect(250)
		m.log.Info("mqtt disconnected")
		return nil
	}
	c.Disconnect(0)
	if p := lostErr.Load(); p != nil && errors.Is(err, errConnectionLost) {
		return fmt.Errorf("mqtt: connection lost: %w", *p)
	}
	return err
}

var errConnectionLost = errors.New("connection lost")

// cutWindow keeps the prefix of peeked that fits windowBytes (at least one message) and returns
// how many to peek next time: twice as many after a full window of small messages, as many as
// fitted after a window of big ones.
func cutWindow(peeked []store.Message, n int) ([]store.Message, int) {
	var bytes int
	for i, msg := range peeked {
		bytes += len(msg.Payload) + len(msg.Topic)
		if bytes >= windowBytes {
			return peeked[:i+1], i + 1
		}
	}
	if len(peeked) == n {
		n = min(2*n, maxWindow)
	}
	return peeked, n
}

// wait waits for t, ctx, the loss of the connection or timeout, whichever comes first.
func wait(ctx context.Context, t paho.Token, timeout time.Duration, lost <-chan struct{}) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-lost:
		return errConnectionLost
	case <-timer.C:
		return fmt.Errorf("no answer within %v", timeout)
	}
}

// describeConnectError makes a TLS failure read as one ("tls: x509: certificate signed by unknown
// authority") instead of paho's generic "network Error : ...".
func describeConnectError(err error, isTLS bool) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknownCA):
		return "tls: " + unknownCA.Error()
	case errors.As(err, &hostname):
		return "tls: " + hostname.Error()
	case errors.As(err, &invalid):
		return "tls: " + invalid.Error()
	case errors.As(err, &verify):
		return "tls: " + verify.Err.Error()
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return "tls: the broker refused the handshake: " + alert.Error()
	}
	// paho wraps network errors as "network Error : <cause>"; the cause says more.
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := u.Unwrap(); len(errs) == 2 {
			err = errs[1]
		}
	}
	if isTLS && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
		// With TLS 1.3 a server that refuses our certificate just hangs up after the handshake.
		return err.Error() + " (the broker may have refused the client certificate)"
	}
	return err.Error()
}

// drain publishes the queue in windows until the connection is lost or ctx ends. Only a prefix of
// a window that was acknowledged, on a connection still up, leaves the outbox: acknowledging a
// later message past a failed one would let the failed one overtake it on resend. With paced set
// it keeps to m.pace until the queue is empty for the first time: the backlog of a long outage
// goes out at that pace, what is queued later at full speed.
func (m *MQTT) drain(ctx context.Context, c paho.Client, lost <-chan struct{}, paced bool) error {
	notify := m.q.Notify(m.cfg.Queue)
	tokens := make([]paho.Token, 0, maxWindow)
	n := 64 // how many to Peek: grows while messages are small, shrinks when they are big
	for {
		peek := n
		if paced {
			peek = min(n, m.pace.window)
		}
		msgs, err := m.q.Peek(m.cfg.Queue, peek)
		if err != nil {
			return fmt.Errorf("mqtt: outbox: %w", err)
		}
		msgs, n = cutWindow(msgs, n)
		if len(msgs) == 0 {
			paced = false
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-lost:
				return errConnectionLost
			case <-notify:
				continue
			}
		}
		began := time.Now()
		tokens = tokens[:0]
		for _, msg := range msgs {
			topic := m.prefix + "/" + msg.Topic
			if err := checkTopic(msg.Topic); err != nil {
				// It can never be delivered and would block everything behind it: a nil
				// token lets it be acknowledged along with its neighbours.
				m.log.Error("dropping a queued message with a bad topic", "seq", msg.Seq, "err", err)
				tokens = append(tokens, nil)
				continue
			}
			qos := byte(1)
			if msg.Class == store.ClassTelemetry {
				qos = 0
			}
			tokens = append(tokens, c.Publish(topic, qos, msg.Retain, msg.Payload))
		}
		done := 0
		var failed error
		for _, t := range tokens {
			if t != nil {
				if failed = wait(ctx, t, ackTimeout, lost); failed != nil {
					break
				}
			}
			done++
		}
		select {
		case <-lost:
			// Tokens can complete as the connection dies without the broker having the message.
			return errConnectionLost
		default:
		}
		if done > 0 {
			if err := m.q.Ack(m.cfg.Queue, seqs(msgs[:done])...); err != nil {
				return fmt.Errorf("mqtt: outbox: %w", err)
			}
		}
		if failed != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("mqtt: publish: %w", failed)
		}
		if paced {
			if err := pause(ctx, m.pace.wait(len(msgs), windowPayload(msgs), time.Since(began)), lost); err != nil {
				return err
			}
		}
	}
}

func windowPayload(msgs []store.Message) int {
	var bytes int
	for _, msg := range msgs {
		bytes += len(msg.Payload) + len(msg.Topic)
	}
	return bytes
}
