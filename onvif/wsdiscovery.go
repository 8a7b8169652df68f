package onvif

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// WS-Discovery (2005/04, the version ONVIF uses) message vocabulary.
const (
	DefaultDiscoveryGroup = "239.255.255.250:3702"

	wsdNS        = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
	wsaNS        = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	wsdTo        = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
	maxDatagram  = 65535
	typeNVT      = "dn:NetworkVideoTransmitter"
	scopePrefix  = "onvif://www.onvif.org/"
	actionProbe  = wsdNS + "/Probe"
	actionHello  = wsdNS + "/Hello"
	actionBye    = wsdNS + "/Bye"
	actionPMatch = wsdNS + "/ProbeMatches"
)

// Found is a device seen by WS-Discovery.
type Found struct {
	EndpointRef string   // e.g. urn:uuid:3ea96f68-...; the identity used for deduplication
	XAddr       string   // the device service URL to use, host fixed to the address the reply came from
	XAddrs      []string // every XAddr as the device announced it
	Types       []string
	Scopes      []string
	Name        string // from onvif://www.onvif.org/name/..., unescaped
	Hardware    string // from .../hardware/...
	Location    string // from .../location/...
	Addr        net.IP // source of the last message
	Interface   string // our interface it was heard on
}

// discoveryKind says what a WS-Discovery datagram was.
type discoveryKind int

const (
	kindOther discoveryKind = iota
	kindProbeMatches
	kindHello
	kindBye
	kindProbe
)

// probeMessage builds a Probe; types "" probes for every device (some cameras answer only that).
func probeMessage(messageID, types string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	b.WriteString(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="` + wsaNS +
		`" xmlns:d="` + wsdNS + `" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"` +
		` xmlns:tds="http://www.onvif.org/ver10/device/wsdl">`)
	b.WriteString(`<s:Header><a:Action s:mustUnderstand="1">` + actionProbe + `</a:Action>`)
	b.WriteString(`<a:MessageID>uuid:` + messageID + `</a:MessageID>`)
	b.WriteString(`<a:ReplyTo><a:Address>` + wsaNS + `/role/anonymous</a:Address></a:ReplyTo>`)
	b.WriteString(`<a:To s:mustUnderstand="1">` + wsdTo + `</a:To></s:Header>`)
	b.WriteString(`<s:Body><d:Probe>`)
	if types != "" {
		b.WriteString(`<d:Types>` + types + `</d:Types>`)
	}
	b.WriteString(`</d:Probe></s:Body></s:Envelope>`)
	return []byte(b.String())
}

// ParseDiscovery parses a ProbeMatches, Hello or Bye datagram. from is the sender's address
// (nil if unknown), used to fix XAddrs. Messages of other kinds yield no devices and no error.
func ParseDiscovery(data []byte, from net.IP) ([]Found, error) {
	_, found, err := parseDiscovery(data, from)
	return found, err
}

func parseDiscovery(data []byte, from net.IP) (discoveryKind, []Found, error) {
	body, err := parseEnvelope(data)
	if err != nil {
		return kindOther, nil, fmt.Errorf("ws-discovery: %w", err)
	}
	var (
		kind    discoveryKind
		entries []*element
	)
	switch {
	case body.child("ProbeMatches") != nil:
		kind, entries = kindProbeMatches, body.child("ProbeMatches").all("ProbeMatch")
	case body.child("Hello") != nil:
		kind, entries = kindHello, []*element{body.child("Hello")}
	case body.child("Bye") != nil:
		kind, entries = kindBye, []*element{body.child("Bye")}
	case body.child("Probe") != nil:
		return kindProbe, nil, nil
	default:
		return kindOther, nil, nil
	}
	var out []Found
	for _, e := range entries {
		f := Found{
			EndpointRef: e.path("EndpointReference", "Address").text(),
			Types:       strings.Fields(e.child("Types").text()),
			Scopes:      strings.Fields(e.child("Scopes").text()),
			XAddrs:      strings.Fields(e.child("XAddrs").text()),
			Addr:        from,
		}
		if f.EndpointRef == "" {
			continue
		}
		f.Name, f.Hardware, f.Location = parseScopes(f.Scopes)
		f.XAddr = pickXAddr(f.XAddrs, from)
		out = append(out, f)
	}
	return kind, out, nil
}

// endpointKey is the deduplication key: "urn:uuid:X" and "uuid:X" are the same device.
func endpointKey(ref string) string {
	k := strings.ToLower(strings.TrimSpace(ref))
	k = strings.TrimPrefix(k, "urn:")
	return k
}

// parseScopes extracts name, hardware and location from ONVIF scope URIs.
func parseScopes(scopes []string) (name, hardware, location string) {
	for _, s := range scopes {
		rest, ok := strings.CutPrefix(s, scopePrefix)
		if !ok {
			continue
		}
		key, val, _ := strings.Cut(rest, "/")
		if u, err := url.PathUnescape(val); err == nil {
			val = u
		}
		val = strings.TrimSpace(strings.ReplaceAll(val, "_", " "))
		switch strings.ToLower(key) {
		case "name":
			if name == "" {
				name = val
			}
		case "hardware":
			if hardware == "" {
				hardware = val
			}
		case "location":
			if location == "" {
				location = strings.TrimPrefix(val, "/")
			}
		}
	}
	return name, hardware, location
}

// pickXAddr chooses the device URL to use: an http XAddr on the address the message came from if
// there is one, else the first http(s) IPv4 XAddr with its host replaced by that address (devices
// announce 0.0.0.0, link-local or another interface's address).
func pickXAddr(xaddrs []string, from net.IP) string {
	var first *url.URL
	for _, raw := range xaddrs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		u.User = nil // an unauthenticated announcement names no credentials to send (issue 13)
		ip := net.ParseIP(u.Hostname())
		if from != nil && ip != nil && ip.Equal(from) && u.Scheme == "http" {
			return u.String()
		}
		if first == nil || (first.Scheme == "https" && u.Scheme == "http") {
			if ip == nil || ip.To4() != nil || from == nil {
				first = u
			}
		}
	}
	if first == nil {
		return ""
	}
	if from != nil {
		if port := first.Port(); port != "" {
			first.Host = net.JoinHostPort(from.String(), port)
		} else if from.To4() == nil {
			first.Host = "[" + from.String() + "]"
		} else {
			first.Host = from.String()
		}
	}
	return first.String()
}
