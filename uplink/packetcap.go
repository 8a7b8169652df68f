package uplink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxPacketBytes caps every MQTT packet the broker sends us. We only subscribe to commands: one
// over maxCommandBytes but under this cap still gets a reply saying why it was refused, and
// anything larger closes the connection. Without the cap paho allocates whatever a fixed header
// claims, up to 256 MB, before our checks run.
const maxPacketBytes = 2 << 20

// PacketTooLargeError is why a connection was closed: the broker sent a packet whose fixed
// header announces more than the cap.
type PacketTooLargeError struct {
	Size, Max int
}

func (e *PacketTooLargeError) Error() string {
	return fmt.Sprintf("mqtt: the broker sent a packet of at least %d bytes, over the %d-byte cap: connection closed",
		e.Size, e.Max)
}

// errMalformedLength is a remaining length longer than the four bytes MQTT 3.1.1 §2.2.3 allows.
var errMalformedLength = errors.New("mqtt: malformed packet length from the broker: connection closed")

// capOpenConnection is a paho OpenConnectionFunc that dials as paho itself does (mqtt, mqtts,
// ws, wss) and caps the packets read from the connection at max bytes.
func capOpenConnection(max int) paho.OpenConnectionFunc {
	return func(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
		d := o.Dialer
		if d == nil {
			d = &net.Dialer{Timeout: 30 * time.Second}
		}
		var conn net.Conn
		var err error
		switch uri.Scheme {
		case "mqtt", "tcp":
			conn, err = d.Dial("tcp", uri.Host)
		case "mqtts", "ssl", "tls":
			conn, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
		case "ws", "wss":
			dialURI := *uri
			dialURI.User = nil
			var tlsc *tls.Config
			if uri.Scheme == "wss" {
				tlsc = o.TLSConfig
			}
			conn, err = paho.NewWebsocket(dialURI.String(), tlsc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
		default:
			return nil, fmt.Errorf("mqtt: unknown scheme %q", uri.Scheme)
		}
		if err != nil {
			return nil, err
		}
		return newPacketCapConn(conn, max), nil
	}
}

// packetCapConn follows the MQTT packet framing of what it reads and closes the connection as
// soon as a fixed header announces more than max bytes, before handing those bytes on: the
// reader never sees the length, so it never allocates for it.
type packetCapConn struct {
	net.Conn
	max int

	mu        sync.Mutex // paho has one reader; this is for Close racing it
	err       error
	inLength  bool // reading the remaining-length bytes
	length    int
	mult      int
	lenBytes  int
	remaining int // body bytes still to pass
}

func newPacketCapConn(c net.Conn, max int) *packetCapConn {
	return &packetCapConn{Conn: c, max: max}
}

func (c *packetCapConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, rerr := c.Conn.Read(p)
	if err := c.scan(p[:n]); err != nil {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		_ = c.Close() // the scan error is what the caller must see
		return 0, err
	}
	return n, rerr
}

// scan advances the framing state over b and fails on the first header over the cap.
func (c *packetCapConn) scan(b []byte) error {
	for len(b) > 0 {
		switch {
		case c.remaining > 0:
			k := min(c.remaining, len(b))
			c.remaining -= k
			b = b[k:]
		case !c.inLength: // the fixed header's first byte: type and flags
			c.inLength, c.length, c.mult, c.lenBytes = true, 0, 1, 0
			b = b[1:]
		default:
			v := b[0]
			b = b[1:]
			c.length += int(v&0x7f) * c.mult
			c.mult *= 128
			c.lenBytes++
			if c.length > c.max {
				return &PacketTooLargeError{Size: c.length, Max: c.max}
			}
			if v&0x80 == 0 {
				c.inLength = false
				c.remaining = c.length
			} else if c.lenBytes == 4 {
				return errMalformedLength
			}
		}
	}
	return nil
}
