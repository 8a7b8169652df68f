package mdns

import (
	"cmp"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// mdnsState gathers what one browse heard. DNS-SD spreads an instance over PTR, SRV, TXT and A
// records that arrive in any order, in one packet or several, so records are kept by name and
// joined only when the browse ends. Keys are lower-case: DNS names compare case-insensitively.
type mdnsState struct {
	services  map[string]string // "_rtsp._tcp.local." -> "_rtsp._tcp", as configured
	instances map[string]mdnsInstance
	srv       map[string]mdnsSRV
	txt       map[string][]string
	addrs     map[string][]netip.Addr
	asked     map[string]int // follow-up questions sent, by type and name
}

type mdnsInstance struct {
	label   string // "AXIS M3045-V - ACCC8E012345"
	service string // "_axis-video._tcp"
}

type mdnsSRV struct {
	target string
	port   uint16
}

// newMDNSState browses for services, each a DNS-SD type such as "_rtsp._tcp".
func newMDNSState(services []string) *mdnsState {
	s := &mdnsState{
		services:  map[string]string{},
		instances: map[string]mdnsInstance{},
		srv:       map[string]mdnsSRV{},
		txt:       map[string][]string{},
		addrs:     map[string][]netip.Addr{},
		asked:     map[string]int{},
	}
	for _, svc := range services {
		s.services[strings.ToLower(svc)+".local."] = svc
	}
	return s
}

// add takes the records of one response. A record with TTL 0 is a goodbye (RFC 6762 §10.1).
func (s *mdnsState) add(recs []mdnsRecord) {
	for _, r := range recs {
		name := strings.ToLower(r.Name)
		switch r.Type {
		case dnsmessage.TypePTR:
			svc, ok := s.services[name]
			if !ok {
				continue
			}
			key := strings.ToLower(r.Target)
			label, ok := strings.CutSuffix(key, "."+name)
			if !ok || label == "" {
				continue
			}
			if r.TTL == 0 {
				delete(s.instances, key)
				continue
			}
			if _, have := s.instances[key]; have || len(s.instances) < mdnsMaxInstances {
				// The label is cut from the original target to keep its case.
				s.instances[key] = mdnsInstance{label: r.Target[:len(label)], service: svc}
			}
		case dnsmessage.TypeSRV:
			if !s.browsed(name) {
				continue
			}
			if r.TTL == 0 {
				delete(s.srv, name)
				continue
			}
			if _, have := s.srv[name]; have || len(s.srv) < mdnsMaxNames {
				s.srv[name] = mdnsSRV{target: r.Target, port: r.Port}
			}
		case dnsmessage.TypeTXT:
			if !s.browsed(name) {
				continue
			}
			if r.TTL == 0 {
				delete(s.txt, name)
				continue
			}
			if _, have := s.txt[name]; have || len(s.txt) < mdnsMaxNames {
				s.txt[name] = slices.Clone(r.Text)
			}
		case dnsmessage.TypeA:
			have := s.addrs[name]
			i := slices.Index(have, r.Addr)
			switch {
			case r.TTL == 0 && i >= 0:
				s.addrs[name] = slices.Delete(have, i, i+1)
			case r.TTL == 0 || i >= 0 || len(have) >= mdnsMaxAddrs:
			case have == nil && len(s.addrs) >= mdnsMaxNames:
			default:
				s.addrs[name] = append(have, r.Addr)
			}
		}
	}
}

// browsed reports whether name is an instance name of a browsed service type.
func (s *mdnsState) browsed(name string) bool {
	for suffix := range s.services {
		if len(name) > len(suffix)+1 && strings.HasSuffix(name, suffix) && name[len(name)-len(suffix)-1] == '.' {
			return true
		}
	}
	return false
}

// followUps asks for what the answers so far left out: the SRV record of an instance heard of
// only by PTR, the A record of an SRV target. Each is asked at most twice per browse.
func (s *mdnsState) followUps() []dnsmessage.Question {
	var qs []dnsmessage.Question
	ask := func(t dnsmessage.Type, name string) {
		key := t.String() + " " + strings.ToLower(name)
		if s.asked[key] >= 2 {
			return
		}
		n, err := dnsmessage.NewName(name)
		if err != nil {
			return
		}
		q := dnsmessage.Question{Name: n, Type: t, Class: dnsmessage.ClassINET}
		// A label from the wire may hold dots, so the name may not pack again ("a..b"); one
		// such instance must not spoil the query for the others.
		if _, err := buildMDNSQueries([]dnsmessage.Question{q}); err != nil {
			return
		}
		s.asked[key]++
		qs = append(qs, q)
	}
	for _, key := range slices.Sorted(maps.Keys(s.instances)) {
		srv, ok := s.srv[key]
		switch {
		case !ok:
			in := s.instances[key]
			ask(dnsmessage.TypeSRV, in.label+"."+in.service+".local.")
		case len(s.addrs[strings.ToLower(srv.target)]) == 0:
			ask(dnsmessage.TypeA, srv.target)
		}
	}
	return qs
}

// results joins the records into services that can be reached: those with a port and an IPv4
// address. _http._tcp instances are kept only when they look like a camera.
func (s *mdnsState) results() []Service {
	var out []Service
	for key, in := range s.instances {
		srv, ok := s.srv[key]
		if !ok {
			continue
		}
		addrs := slices.Clone(s.addrs[strings.ToLower(srv.target)])
		if len(addrs) == 0 {
			continue
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		ips := make([]net.IP, len(addrs))
		for i, a := range addrs {
			ips[i] = net.IP(a.AsSlice())
		}
		svc := Service{Instance: in.label, Service: in.service, Host: srv.target, Port: int(srv.port),
			IPv4: ips, Text: slices.Clone(s.txt[key])}
		if strings.EqualFold(in.service, "_http._tcp") && !looksLikeCamera(svc) {
			continue
		}
		out = append(out, svc)
	}
	slices.SortFunc(out, func(a, b Service) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Instance, b.Instance),
			strings.Compare(a.Host, b.Host))
	})
	return out
}
