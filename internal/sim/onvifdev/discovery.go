package onvifdev

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
)

// discovery holds the device's WS-Discovery sockets: one on the group port (shared with
// others through SO_REUSEADDR) to hear probes, one on the device's address to answer and
// announce from, so the source address of every answer is the device's.
type discovery struct {
	group   *net.UDPAddr
	listen  *ipv4.PacketConn
	send    *ipv4.PacketConn
	closeMu sync.Once
	seq     int
	mu      sync.Mutex
}

func (d *Device) openDiscovery(ctx context.Context) (*discovery, error) {
	group, err := net.ResolveUDPAddr("udp4", d.cfg.DiscoveryGroup)
	if err != nil || !group.IP.IsMulticast() {
		return nil, fmt.Errorf("onvifdev: discovery group %q: want a multicast host:port", d.cfg.DiscoveryGroup)
	}
	ip := net.ParseIP(d.cfg.DiscoveryIP).To4()
	if ip == nil {
		return nil, fmt.Errorf("onvifdev: discovery IP %q: want an IPv4 address of an interface", d.cfg.DiscoveryIP)
	}
	ifi, err := interfaceWith(ip)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	lconn, err := lc.ListenPacket(ctx, "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("onvifdev: listen %s: %w", group, err)
	}
	lpc := ipv4.NewPacketConn(lconn)
	if err := lpc.JoinGroup(ifi, &net.UDPAddr{IP: group.IP}); err != nil {
		lconn.Close()
		return nil, fmt.Errorf("onvifdev: join %s on %s: %w", group.IP, ifi.Name, err)
	}
	sconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		lconn.Close()
		return nil, fmt.Errorf("onvifdev: listen %s: %w", ip, err)
	}
	spc := ipv4.NewPacketConn(sconn)
	if err := spc.SetMulticastInterface(ifi); err != nil {
		lconn.Close()
		sconn.Close()
		return nil, fmt.Errorf("onvifdev: multicast interface %s: %w", ifi.Name, err)
	}
	_ = spc.SetMulticastTTL(1)
	_ = spc.SetMulticastLoopback(true)
	return &discovery{group: group, listen: lpc, send: spc}, nil
}

func (s *discovery) close() {
	s.closeMu.Do(func() {
		s.listen.Close()
		s.send.Close()
	})
}

func interfaceWith(ip net.IP) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		addrs, _ := ifs[i].Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return &ifs[i], nil
			}
		}
	}
	return nil, fmt.Errorf("onvifdev: no interface has address %s", ip)
}

func (d *Device) serveDiscovery(ctx context.Context, s *discovery) {
	buf := make([]byte, 65535)
	for {
		n, _, src, err := s.listen.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		msgID, types, ok := parseProbe(buf[:n])
		if !ok {
			continue
		}
		if types != "" && !strings.Contains(types, "NetworkVideoTransmitter") && !strings.Contains(types, "Device") {
			continue
		}
		reply := d.discoveryMessage("ProbeMatches", msgID, s)
		if _, err := s.send.WriteTo(reply, nil, src); err != nil {
			d.log.Debug("onvifdev: probe match", "to", src, "err", err)
		}
	}
}

// parseProbe returns the MessageID and Types of a Probe; ok is false for anything else.
func parseProbe(data []byte) (msgID, types string, ok bool) {
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	var cur string
	for depth := 0; ; {
		tok, err := dec.Token()
		if err != nil {
			return msgID, types, ok
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 16 {
				return "", "", false
			}
			cur = t.Name.Local
			if cur == "Probe" {
				ok = true
			}
		case xml.EndElement:
			depth--
			cur = ""
		case xml.CharData:
			switch cur {
			case "MessageID":
				msgID = strings.TrimSpace(string(t))
			case "Types":
				types = strings.TrimSpace(string(t))
			}
		}
	}
}

// Hello announces the device on the discovery group.
func (d *Device) Hello() error { return d.announce("Hello") }

// Bye says the device is leaving.
func (d *Device) Bye() error { return d.announce("Bye") }

func (d *Device) announce(kind string) error {
	d.mu.Lock()
	s := d.disc
	d.mu.Unlock()
	if s == nil {
		return errors.New("onvifdev: discovery is not running")
	}
	_, err := s.send.WriteTo(d.discoveryMessage(kind, "", s), nil, s.group)
	return err
}

func (d *Device) discoveryMessage(kind, relatesTo string, s *discovery) []byte {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	action := "http://schemas.xmlsoap.org/ws/2005/04/discovery/" + kind
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" ` +
		`xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" ` +
		`xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" ` +
		`xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><SOAP-ENV:Header>`)
	fmt.Fprintf(&b, `<wsa:MessageID>urn:uuid:%s</wsa:MessageID>`, uuid())
	if relatesTo != "" {
		fmt.Fprintf(&b,
			`<wsa:RelatesTo>%s</wsa:RelatesTo><wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>`,
			esc(relatesTo))
	} else {
		b.WriteString(`<wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>`)
	}
	fmt.Fprintf(&b,
		`<wsa:Action>%s</wsa:Action><d:AppSequence InstanceId="1" MessageNumber="%d"/></SOAP-ENV:Header><SOAP-ENV:Body>`,
		action, seq)
	epr := `<wsa:EndpointReference><wsa:Address>` + esc(d.cfg.EndpointRef) + `</wsa:Address></wsa:EndpointReference>`
	switch kind {
	case "Bye":
		b.WriteString(`<d:Bye>` + epr + `</d:Bye>`)
	default:
		inner := epr + `<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>` + esc(d.scopes()) +
			`</d:Scopes><d:XAddrs>` + esc(d.base()+"/onvif/device_service") +
			`</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>`
		if kind == "Hello" {
			b.WriteString(`<d:Hello>` + inner + `</d:Hello>`)
		} else {
			b.WriteString(`<d:ProbeMatches><d:ProbeMatch>` + inner + `</d:ProbeMatch></d:ProbeMatches>`)
		}
	}
	b.WriteString(`</SOAP-ENV:Body></SOAP-ENV:Envelope>`)
	return []byte(b.String())
}

func (d *Device) scopes() string {
	esc := func(s string) string { return strings.ReplaceAll(url.PathEscape(s), "%2F", "/") }
	return strings.Join([]string{
		"onvif://www.onvif.org/Profile/Streaming",
		"onvif://www.onvif.org/type/video_encoder",
		"onvif://www.onvif.org/name/" + esc(d.cfg.Name),
		"onvif://www.onvif.org/hardware/" + esc(d.cfg.Model),
		"onvif://www.onvif.org/location/" + esc(d.cfg.Location),
	}, " ")
}
