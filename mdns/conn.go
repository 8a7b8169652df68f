package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

// mdnsConn is the browse's socket on one interface.
type mdnsConn struct {
	ifi  *net.Interface
	conn net.PacketConn
	pc   *ipv4.PacketConn
}

// listenMDNS binds the mDNS group and port for one interface. Both SO_REUSEADDR and
// SO_REUSEPORT are set because responders already on the port set one or the other: avahi and
// umdns hold 0.0.0.0:5353 with SO_REUSEADDR, some embedded responders use SO_REUSEPORT.
// Binding the group address rather than the wildcard keeps unicast traffic to 5353 away.
// Queries leave from port 5353, so responders answer by multicast (RFC 6762 §5.2).
func listenMDNS(ctx context.Context, ifi *net.Interface) (*mdnsConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := lc.ListenPacket(ctx, "udp4", mdnsGroup.String())
	if err != nil {
		return nil, fmt.Errorf("mdns on %s: %w", ifi.Name, err)
	}
	pc := ipv4.NewPacketConn(conn)
	fail := func(what string, err error) (*mdnsConn, error) {
		conn.Close()
		return nil, fmt.Errorf("mdns on %s: %s: %w", ifi.Name, what, err)
	}
	if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: mdnsGroup.IP}); err != nil {
		return fail("join group", err)
	}
	if err := pc.SetMulticastInterface(ifi); err != nil {
		return fail("set multicast interface", err)
	}
	// RFC 6762 §11: receivers check that the TTL is 255 to refuse off-link packets.
	if err := pc.SetMulticastTTL(255); err != nil {
		return fail("set multicast TTL", err)
	}
	// Loopback on: a responder on this very host (and the tests' namespace on lo) must hear us.
	if err := pc.SetMulticastLoopback(true); err != nil {
		return fail("set multicast loopback", err)
	}
	// Every socket bound to the group hears it from every interface; the control message tells
	// which one a packet came in by, so each is handled once, by its own interface's socket.
	_ = pc.SetControlMessage(ipv4.FlagInterface, true)
	return &mdnsConn{ifi: ifi, conn: conn, pc: pc}, nil
}

func (c *mdnsConn) send(msg []byte) error {
	_, err := c.pc.WriteTo(msg, nil, mdnsGroup)
	return err
}

// read hands each well-formed response to handle until the socket is closed.
func (c *mdnsConn) read(log *slog.Logger, handle func([]mdnsRecord)) {
	// One byte more than the largest message tells a truncated datagram from a full one.
	buf := make([]byte, mdnsMaxPacket+1)
	for {
		n, cm, src, err := c.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if cm != nil && cm.IfIndex != 0 && cm.IfIndex != c.ifi.Index {
			continue
		}
		recs, err := parseMDNSResponse(buf[:n])
		if err != nil {
			if !errors.Is(err, errNotMDNSResponse) {
				log.Debug("mdns: packet ignored", "interface", c.ifi.Name, "from", src, "err", err)
			}
			continue
		}
		handle(recs)
	}
}

func (c *mdnsConn) close() { c.conn.Close() }
