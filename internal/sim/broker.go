package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Broker is a small MQTT 3.1.1 broker standing in for Eltex SC in `camgate demo` and in tests.
//
// It does what camgate's paho client and the mosquitto command line clients need: QoS 0 and 1,
// retained messages, + and # wildcards, Last Will, keep alive, and take-over of a duplicate
// client id. Sessions are not kept after a connection ends, whatever the clean-session flag says,
// so CONNACK never reports a present session. QoS 2 is not spoken: a QoS 2 subscription is granted
// QoS 1 (which MQTT allows), and a QoS 2 PUBLISH closes the connection, because answering it with
// PUBACK would be a protocol error the sender could not recover from.
type Broker struct {
	ln     net.Listener
	log    *slog.Logger
	out    io.Writer
	outMu  sync.Mutex // keeps lines printed to out whole
	limits brokerLimits

	mu       sync.Mutex
	clients  map[string]*brokerConn // by client id, connected clients only
	conns    map[*brokerConn]struct{}
	retained map[string]retainedMessage
	closed   bool
}

// BrokerConfig configures a Broker.
type BrokerConfig struct {
	// Addr is the TCP address to listen on; empty means 127.0.0.1:0.
	Addr   string
	Logger *slog.Logger
	// Out, when set, gets one line "topic payload" for each PUBLISH the broker receives (from
	// clients or Publish); payloads over 200 bytes or not UTF-8 text are summarised.
	Out io.Writer
}

// brokerLimits bound what one client can make the broker hold. They are fields, not constants,
// only so that tests can reach them with small numbers.
type brokerLimits struct {
	maxPacket      int           // bytes of one packet after the fixed header
	maxClients     int           // open connections
	queue          int           // packets waiting to be written to one client
	maxInflight    int           // QoS 1 messages sent to one client and not yet acknowledged
	connectTimeout time.Duration // from accept to CONNECT
	writeTimeout   time.Duration // for one packet to leave
	maxFilters     int           // subscriptions of one client
	maxRetained    int           // topics with a retained message
}

// defaultBrokerLimits is a function, not a variable, so that no test can change it for others.
func defaultBrokerLimits() brokerLimits {
	return brokerLimits{
		maxPacket:      1 << 20,
		maxClients:     64,
		queue:          256,
		maxInflight:    1024,
		connectTimeout: 10 * time.Second,
		writeTimeout:   10 * time.Second,
		maxFilters:     1024,
		maxRetained:    10000,
	}
}

type retainedMessage struct {
	payload []byte
	qos     byte
}

// outSummaryBytes is how much of a payload Out shows.
const outSummaryBytes = 200

// NewBroker binds the listening socket, so URL is known before Run.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen mqtt %s: %w", addr, err)
	}
	return &Broker{
		ln:       ln,
		log:      loggerOrDiscard(cfg.Logger),
		out:      cfg.Out,
		limits:   defaultBrokerLimits(),
		clients:  make(map[string]*brokerConn),
		conns:    make(map[*brokerConn]struct{}),
		retained: make(map[string]retainedMessage),
	}, nil
}

// URL is mqtt://host:port, with loopback as host when bound to every address.
func (b *Broker) URL() string { return dialURL("mqtt", b.ln) }

// Run serves clients until ctx ends, then closes every connection (without publishing their
// wills: nobody is left to receive them) and returns nil.
func (b *Broker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	shutdown := func() {
		b.mu.Lock()
		b.closed = true
		conns := make([]*brokerConn, 0, len(b.conns))
		for c := range b.conns {
			conns = append(conns, c)
		}
		b.mu.Unlock()
		b.ln.Close()
		for _, c := range conns {
			c.close("broker stopped")
		}
	}
	stop := context.AfterFunc(ctx, shutdown)

	var err error
	for {
		var nc net.Conn
		nc, err = b.ln.Accept()
		if err != nil {
			break
		}
		c := b.newConn(nc)
		if c == nil {
			continue
		}
		wg.Add(2)
		go func() { defer wg.Done(); c.writeLoop() }()
		go func() { defer wg.Done(); b.serve(c) }()
	}
	if stop() {
		// Accept failed on its own: stop the clients too, or Wait would wait for them forever.
		shutdown()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("mqtt accept: %w", err)
}

// Retained returns the retained message of topic.
func (b *Broker) Retained(topic string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.retained[topic]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), m.payload...), true
}

// Publish injects a message as if a client had published it at QoS 1 (so subscribers get it at
// the QoS of their subscription). An empty retained payload deletes the retained message.
func (b *Broker) Publish(topic string, payload []byte, retain bool) {
	b.route(publishPacket{topic: topic, payload: append([]byte(nil), payload...), qos: 1, retain: retain})
}

// newConn registers an accepted connection, or closes it when the broker is full or stopping.
func (b *Broker) newConn(nc net.Conn) *brokerConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.conns) >= b.limits.maxClients {
		b.log.Warn("mqtt: connection refused",
			"remote", nc.RemoteAddr().String(), "clients", len(b.conns), "stopping", b.closed)
		nc.Close()
		return nil
	}
	c := &brokerConn{
		b:        b,
		nc:       nc,
		out:      make(chan []byte, b.limits.queue),
		done:     make(chan struct{}),
		subs:     make(map[string]byte),
		inflight: make(map[uint16]struct{}),
		log:      b.log.With("remote", nc.RemoteAddr().String()),
	}
	b.conns[c] = struct{}{}
	return c
}

// brokerConn is one client connection: serve reads, writeLoop writes what queue hands it.
type brokerConn struct {
	b   *Broker
	nc  net.Conn
	log *slog.Logger

	out       chan []byte
	done      chan struct{}
	closeOnce sync.Once

	// Guarded by b.mu.
	id       string
	will     *publishPacket
	subs     map[string]byte // filter -> granted QoS
	nextID   uint16
	inflight map[uint16]struct{}
}

func (c *brokerConn) close(reason string) {
	c.closeOnce.Do(func() {
		c.log.Debug("mqtt: closing connection", "reason", reason)
		close(c.done)
		c.nc.Close()
	})
}

func (c *brokerConn) writeLoop() {
	for {
		select {
		case <-c.done:
			return
		case p := <-c.out:
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.b.limits.writeTimeout)) // fails only once closed; Write says so
			if _, err := c.nc.Write(p); err != nil {
				c.close("write: " + err.Error())
				return
			}
		}
	}
}

// writeNow writes a refusing CONNACK itself, so that it goes out before the connection is closed;
// nothing else has been queued yet, so the writer is idle.
func (c *brokerConn) writeNow(p []byte) {
	// A failed write closes nothing here: the reader sees the broken connection and ends it.
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.b.limits.writeTimeout))
	_, _ = c.nc.Write(p)
}

// queue hands p to the writer. When the client does not keep up, a droppable packet (QoS 0) is
// dropped; anything else closes the connection, because MQTT has no way to skip it.
func (c *brokerConn) queue(p []byte, droppable bool) {
	select {
	case c.out <- p:
	case <-c.done:
	default:
		if droppable {
			c.log.Debug("mqtt: slow client, QoS 0 message dropped")
			return
		}
		c.close("slow client: outbound queue full")
	}
}

// serve reads the connection until it ends, then forgets the client and publishes its will
// unless it said DISCONNECT.
func (b *Broker) serve(c *brokerConn) {
	graceful, err := b.readLoop(c)
	c.close(fmt.Sprint(err))
	b.mu.Lock()
	delete(b.conns, c)
	if b.clients[c.id] == c {
		delete(b.clients, c.id)
	}
	will := c.will
	c.will = nil
	stopping := b.closed
	b.mu.Unlock()
	switch {
	case graceful:
		c.log.Info("mqtt: client disconnected", "client", c.id)
	case errors.Is(err, errTakenOver):
		c.log.Info("mqtt: client taken over", "client", c.id)
	default:
		c.log.Info("mqtt: client connection lost", "client", c.id, "err", err)
	}
	if will != nil && !graceful && !stopping {
		b.route(*will)
	}
}

var errTakenOver = errors.New("client id taken over by a new connection")

// readLoop handles packets until the connection fails or the client disconnects (graceful).
func (b *Broker) readLoop(c *brokerConn) (graceful bool, err error) {
	r := bufio.NewReader(c.nc)
	_ = c.nc.SetReadDeadline(time.Now().Add(b.limits.connectTimeout)) // fails only once closed; the read says so
	p, err := readPacket(r, b.limits.maxPacket)
	if err != nil {
		return false, fmt.Errorf("read CONNECT: %w", err)
	}
	if p.typ != typeConnect {
		return false, fmt.Errorf("first packet is type %d, not CONNECT", p.typ)
	}
	keepAlive, err := b.connect(c, p)
	if err != nil {
		return false, err
	}
	for {
		if keepAlive > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(keepAlive * 3 / 2))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		p, err := readPacket(r, b.limits.maxPacket)
		if err != nil {
			select {
			case <-c.done:
				if b.isTakenOver(c) {
					return false, errTakenOver
				}
			default:
			}
			return false, err
		}
		switch p.typ {
		case typePublish:
			pub, err := decodePublish(p)
			if err != nil {
				return false, err
			}
			if pub.qos == 2 {
				return false, errors.New("QoS 2 PUBLISH is not supported")
			}
			if pub.qos == 1 {
				c.queue(encodeAck(typePuback, pub.id), false)
			}
			b.route(pub)
		case typePuback:
			id, err := decodeAck(p)
			if err != nil {
				return false, err
			}
			b.mu.Lock()
			delete(c.inflight, id)
			b.mu.Unlock()
		case typeSubscribe:
			sub, err := decodeSubscribe(p)
			if err != nil {
				return false, err
			}
			if err := b.subscribe(c, sub); err != nil {
				return false, err
			}
		case typeUnsubscribe:
			unsub, err := decodeUnsubscribe(p)
			if err != nil {
				return false, err
			}
			b.mu.Lock()
			for _, f := range unsub.filters {
				delete(c.subs, f)
			}
			b.mu.Unlock()
			c.queue(encodeAck(typeUnsuback, unsub.id), false)
		case typePingreq:
			if err := checkEmpty(p); err != nil {
				return false, err
			}
			c.queue([]byte{typePingresp << 4, 0}, false)
		case typeDisconnect:
			if err := checkEmpty(p); err != nil {
				return false, err
			}
			b.mu.Lock()
			c.will = nil
			b.mu.Unlock()
			return true, nil
		default:
			// A second CONNECT, QoS 2 flow packets, or packets only a server sends.
			return false, fmt.Errorf("unexpected packet type %d", p.typ)
		}
	}
}

func (b *Broker) isTakenOver(c *brokerConn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	other, ok := b.clients[c.id]
	return ok && other != c
}

// CONNACK return codes.
const (
	connAccepted          = 0
	connBadProtocol       = 1
	connBadClientID       = 2
	connServerUnavailable = 3
)

// connect validates CONNECT, takes over a duplicate client id and answers CONNACK.
func (b *Broker) connect(c *brokerConn, p packet) (time.Duration, error) {
	cp, err := decodeConnect(p)
	if errors.Is(err, errBadProtocolLevel) {
		c.writeNow(encodeConnack(connBadProtocol))
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	if cp.clientID == "" {
		if !cp.cleanSession {
			c.writeNow(encodeConnack(connBadClientID))
			return 0, errors.New("empty client id without clean session")
		}
		var rnd [8]byte
		rand.Read(rnd[:])
		cp.clientID = "auto-" + hex.EncodeToString(rnd[:])
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.writeNow(encodeConnack(connServerUnavailable))
		return 0, errors.New("broker stopping")
	}
	old := b.clients[cp.clientID]
	var oldWill *publishPacket
	if old != nil {
		oldWill, old.will = old.will, nil
	}
	c.id = cp.clientID
	// Set before c is reachable from other goroutines, which log through it when they close c.
	c.log = c.log.With("client", cp.clientID)
	c.will = cp.will
	b.clients[cp.clientID] = c
	b.mu.Unlock()

	if old != nil {
		old.close("taken over")
		// The old connection ended without DISCONNECT, so its will goes out, and before the new
		// connection can publish anything (a "status: online" must not be overtaken by the
		// previous connection's "offline").
		if oldWill != nil {
			b.route(*oldWill)
		}
	}
	c.queue(encodeConnack(connAccepted), false)
	c.log.Info("mqtt: client connected",
		"clean_session", cp.cleanSession, "keep_alive_s", cp.keepAlive, "will", cp.will != nil, "took_over", old != nil)
	return time.Duration(cp.keepAlive) * time.Second, nil
}

// subscribe records the filters, answers SUBACK and then sends the retained messages they match.
func (b *Broker) subscribe(c *brokerConn, sub subscribePacket) error {
	codes := make([]byte, len(sub.filters))
	b.mu.Lock()
	defer b.mu.Unlock()
	var pending []publishPacket
	for i, f := range sub.filters {
		if !validFilter(f.filter) {
			codes[i] = 0x80
			continue
		}
		if _, ok := c.subs[f.filter]; !ok && len(c.subs) >= b.limits.maxFilters {
			codes[i] = 0x80
			continue
		}
		qos := min(f.qos, 1)
		c.subs[f.filter] = qos
		codes[i] = qos
		for topic, m := range b.retained {
			if matchTopic(f.filter, topic) {
				pending = append(pending, publishPacket{topic: topic, payload: m.payload, qos: min(m.qos, qos), retain: true})
			}
		}
	}
	c.queue(encodeSuback(sub.id, codes), false)
	for _, m := range pending {
		c.deliverLocked(m)
	}
	return nil
}

// route stores a retained message and delivers a message to every matching subscriber.
func (b *Broker) route(m publishPacket) {
	b.print(m)
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.retain {
		_, replaces := b.retained[m.topic]
		switch {
		case len(m.payload) == 0:
			delete(b.retained, m.topic)
		case replaces || len(b.retained) < b.limits.maxRetained:
			b.retained[m.topic] = retainedMessage{payload: m.payload, qos: m.qos}
		default:
			b.log.Warn("mqtt: too many retained topics, message not retained", "topic", m.topic, "limit", b.limits.maxRetained)
		}
	}
	for _, c := range b.clients {
		// Overlapping subscriptions get one copy, at the highest QoS among them.
		var qos byte
		matched := false
		for f, q := range c.subs {
			if matchTopic(f, m.topic) {
				matched = true
				qos = max(qos, q)
			}
		}
		if matched {
			c.deliverLocked(publishPacket{topic: m.topic, payload: m.payload, qos: min(qos, m.qos)})
		}
	}
}

// deliverLocked queues m to c, numbering it in c's session if it is QoS 1. b.mu must be held.
func (c *brokerConn) deliverLocked(m publishPacket) {
	if m.qos > 0 {
		if len(c.inflight) >= c.b.limits.maxInflight {
			c.close("too many unacknowledged messages")
			return
		}
		for {
			c.nextID++
			if _, busy := c.inflight[c.nextID]; c.nextID != 0 && !busy {
				break
			}
		}
		m.id = c.nextID
		c.inflight[m.id] = struct{}{}
	}
	c.queue(encodePublish(m), m.qos == 0)
}

func (b *Broker) print(m publishPacket) {
	if b.out == nil {
		return
	}
	var payload string
	switch {
	case !utf8.Valid(m.payload) || bytes.IndexByte(m.payload, 0) >= 0:
		payload = fmt.Sprintf("<%d bytes binary>", len(m.payload))
	case len(m.payload) > outSummaryBytes:
		cut := outSummaryBytes
		for cut > 0 && !utf8.RuneStart(m.payload[cut]) {
			cut--
		}
		payload = fmt.Sprintf("%s… (%d bytes)", m.payload[:cut], len(m.payload))
	default:
		payload = string(m.payload)
	}
	// One line per message, even for pretty-printed JSON.
	payload = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, payload)
	b.outMu.Lock()
	defer b.outMu.Unlock()
	fmt.Fprintf(b.out, "%s %s\n", m.topic, payload)
}

// validFilter reports whether f is a topic filter MQTT 3.1.1 allows: not empty, no NUL, # only as
// the whole last level, + only as a whole level.
func validFilter(f string) bool {
	if f == "" || strings.ContainsRune(f, 0) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// validTopicName reports whether t may be published to: not empty, no wildcards, no NUL.
func validTopicName(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00")
}

// matchTopic reports whether topic matches filter. Topics beginning with $ are not matched by a
// filter beginning with a wildcard, so "#" does not see "$SYS/...".
func matchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a" itself.
			return fmore == tmore || (!tmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// MQTT control packet types.
const (
	typeConnect     = 1
	typeConnack     = 2
	typePublish     = 3
	typePuback      = 4
	typePubrec      = 5
	typePubrel      = 6
	typePubcomp     = 7
	typeSubscribe   = 8
	typeSuback      = 9
	typeUnsubscribe = 10
	typeUnsuback    = 11
	typePingreq     = 12
	typePingresp    = 13
	typeDisconnect  = 14
)

// packet is a control packet split into its fixed header and the rest.
type packet struct {
	typ   byte
	flags byte
	body  []byte
}

type packetReader interface {
	io.Reader
	io.ByteReader
}

var errPacketTooLarge = errors.New("packet too large")

// readPacket reads one control packet, refusing one whose body exceeds maxBody before reading it.
func readPacket(r packetReader, maxBody int) (packet, error) {
	h, err := r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n := 0
	for i := 0; ; i++ {
		if i == 4 {
			return packet{}, errors.New("malformed remaining length")
		}
		d, err := r.ReadByte()
		if err != nil {
			return packet{}, fmt.Errorf("read remaining length: %w", noEOF(err))
		}
		n |= int(d&0x7f) << (7 * i)
		if d&0x80 == 0 {
			break
		}
	}
	if n > maxBody {
		return packet{}, fmt.Errorf("%w: %d bytes (limit %d)", errPacketTooLarge, n, maxBody)
	}
	p := packet{typ: h >> 4, flags: h & 0x0f}
	// Fixed flags are part of the format: anything else is malformed ([MQTT-2.2.2-2]). Checked
	// before the body is awaited, so that a stream of some other protocol is refused at once.
	want := byte(0)
	switch p.typ {
	case typePublish:
		want = p.flags
	case typePubrel, typeSubscribe, typeUnsubscribe:
		want = 2
	case 0, 15:
		return packet{}, fmt.Errorf("reserved packet type %d", p.typ)
	}
	if p.flags != want {
		return packet{}, fmt.Errorf("packet type %d with flags %#x", p.typ, p.flags)
	}
	p.body = make([]byte, n)
	if _, err := io.ReadFull(r, p.body); err != nil {
		return packet{}, fmt.Errorf("read packet body: %w", err)
	}
	return p, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// fields reads the variable header and payload of a packet; the first error sticks.
type fields struct {
	b   []byte
	err error
}

func (f *fields) fail(what string) {
	if f.err == nil {
		f.err = fmt.Errorf("malformed packet: %s", what)
	}
	f.b = nil
}

func (f *fields) u8(what string) byte {
	if len(f.b) < 1 {
		f.fail("short " + what)
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}

func (f *fields) u16(what string) uint16 {
	if len(f.b) < 2 {
		f.fail("short " + what)
		return 0
	}
	v := binary.BigEndian.Uint16(f.b)
	f.b = f.b[2:]
	return v
}

func (f *fields) raw(what string) []byte {
	n := int(f.u16(what + " length"))
	if len(f.b) < n {
		f.fail("short " + what)
		return nil
	}
	v := f.b[:n:n]
	f.b = f.b[n:]
	return v
}

// string reads a UTF-8 string, which MQTT forbids to hold U+0000 or invalid UTF-8.
func (f *fields) text(what string) string {
	v := f.raw(what)
	if !utf8.Valid(v) || strings.ContainsRune(string(v), 0) {
		f.fail(what + " is not valid UTF-8")
		return ""
	}
	return string(v)
}

func (f *fields) end(what string) error {
	if f.err == nil && len(f.b) != 0 {
		f.err = fmt.Errorf("malformed packet: %d trailing bytes in %s", len(f.b), what)
	}
	return f.err
}

type connectPacket struct {
	clientID     string
	cleanSession bool
	keepAlive    uint16
	will         *publishPacket
	username     string
	password     []byte
}

var errBadProtocolLevel = errors.New("unsupported MQTT protocol level")

func decodeConnect(p packet) (connectPacket, error) {
	f := fields{b: p.body}
	name := f.text("protocol name")
	level := f.u8("protocol level")
	flags := f.u8("connect flags")
	keepAlive := f.u16("keep alive")
	if f.err != nil {
		return connectPacket{}, f.err
	}
	switch {
	case name == "MQTT" && level == 4, name == "MQIsdp" && level == 3:
	case name == "MQTT" || name == "MQIsdp":
		return connectPacket{}, fmt.Errorf("%w: %s level %d", errBadProtocolLevel, name, level)
	default:
		return connectPacket{}, fmt.Errorf("malformed packet: protocol name %q", name)
	}
	const (
		flagReserved   = 0x01
		flagClean      = 0x02
		flagWill       = 0x04
		flagWillRetain = 0x20
		flagPassword   = 0x40
		flagUsername   = 0x80
	)
	willQoS := flags >> 3 & 3
	switch {
	case flags&flagReserved != 0:
		return connectPacket{}, errors.New("malformed packet: reserved connect flag set")
	case flags&flagWill == 0 && (willQoS != 0 || flags&flagWillRetain != 0):
		return connectPacket{}, errors.New("malformed packet: will QoS or retain without will")
	case willQoS == 3:
		return connectPacket{}, errors.New("malformed packet: will QoS 3")
	case level == 4 && flags&flagPassword != 0 && flags&flagUsername == 0:
		return connectPacket{}, errors.New("malformed packet: password without username")
	}
	cp := connectPacket{cleanSession: flags&flagClean != 0, keepAlive: keepAlive}
	cp.clientID = f.text("client id")
	if flags&flagWill != 0 {
		topic := f.text("will topic")
		payload := f.raw("will message")
		if f.err == nil && !validTopicName(topic) {
			return connectPacket{}, fmt.Errorf("malformed packet: will topic %q", topic)
		}
		// A QoS 2 will is delivered at QoS 1, like every other message here.
		cp.will = &publishPacket{topic: topic, payload: append([]byte(nil), payload...), qos: min(willQoS, 1),
			retain: flags&flagWillRetain != 0}
	}
	if flags&flagUsername != 0 {
		cp.username = f.text("user name")
	}
	if flags&flagPassword != 0 {
		cp.password = f.raw("password")
	}
	return cp, f.end("CONNECT")
}

type publishPacket struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	dup     bool
	id      uint16
}

func decodePublish(p packet) (publishPacket, error) {
	m := publishPacket{qos: p.flags >> 1 & 3, retain: p.flags&1 != 0, dup: p.flags&8 != 0}
	if m.qos == 3 {
		return publishPacket{}, errors.New("malformed packet: PUBLISH QoS 3")
	}
	if m.qos == 0 && m.dup {
		return publishPacket{}, errors.New("malformed packet: DUP on QoS 0 PUBLISH")
	}
	f := fields{b: p.body}
	m.topic = f.text("topic name")
	if m.qos > 0 {
		m.id = f.u16("packet id")
		if f.err == nil && m.id == 0 {
			return publishPacket{}, errors.New("malformed packet: packet id 0")
		}
	}
	if f.err != nil {
		return publishPacket{}, f.err
	}
	if !validTopicName(m.topic) {
		return publishPacket{}, fmt.Errorf("malformed packet: topic name %q", m.topic)
	}
	m.payload = f.b
	return m, nil
}

func encodePublish(m publishPacket) []byte {
	flags := m.qos << 1
	if m.retain {
		flags |= 1
	}
	if m.dup {
		flags |= 8
	}
	n := 2 + len(m.topic) + len(m.payload)
	if m.qos > 0 {
		n += 2
	}
	b := appendFixedHeader(make([]byte, 0, 5+n), typePublish<<4|flags, n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.topic)))
	b = append(b, m.topic...)
	if m.qos > 0 {
		b = binary.BigEndian.AppendUint16(b, m.id)
	}
	return append(b, m.payload...)
}

type subscription struct {
	filter string
	qos    byte
}

type subscribePacket struct {
	id      uint16
	filters []subscription
}

func decodeSubscribe(p packet) (subscribePacket, error) {
	f := fields{b: p.body}
	s := subscribePacket{id: f.u16("packet id")}
	for f.err == nil && len(f.b) > 0 {
		filter := f.text("topic filter")
		opts := f.u8("requested QoS")
		if f.err == nil && opts > 2 {
			return subscribePacket{}, fmt.Errorf("malformed packet: requested QoS byte %#x", opts)
		}
		s.filters = append(s.filters, subscription{filter: filter, qos: opts})
	}
	if f.err == nil && len(s.filters) == 0 {
		return subscribePacket{}, errors.New("malformed packet: SUBSCRIBE without filters")
	}
	return s, f.err
}

type unsubscribePacket struct {
	id      uint16
	filters []string
}

func decodeUnsubscribe(p packet) (unsubscribePacket, error) {
	f := fields{b: p.body}
	u := unsubscribePacket{id: f.u16("packet id")}
	for f.err == nil && len(f.b) > 0 {
		u.filters = append(u.filters, f.text("topic filter"))
	}
	if f.err == nil && len(u.filters) == 0 {
		return unsubscribePacket{}, errors.New("malformed packet: UNSUBSCRIBE without filters")
	}
	return u, f.err
}

func decodeAck(p packet) (uint16, error) {
	f := fields{b: p.body}
	id := f.u16("packet id")
	return id, f.end("acknowledgement")
}

func checkEmpty(p packet) error {
	if len(p.body) != 0 {
		return fmt.Errorf("malformed packet: type %d with a %d byte body", p.typ, len(p.body))
	}
	return nil
}

func appendFixedHeader(b []byte, h byte, n int) []byte {
	b = append(b, h)
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func encodeConnack(code byte) []byte { return []byte{typeConnack << 4, 2, 0, code} }

func encodeAck(typ byte, id uint16) []byte {
	return []byte{typ << 4, 2, byte(id >> 8), byte(id)}
}

func encodeSuback(id uint16, codes []byte) []byte {
	b := appendFixedHeader(nil, typeSuback<<4, 2+len(codes))
	b = binary.BigEndian.AppendUint16(b, id)
	return append(b, codes...)
}
