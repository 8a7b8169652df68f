package mdns

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// mdnsPacket builds a message with the answers and additionals given; hdr sets the flags.
func mdnsPacket(t testing.TB, hdr dnsmessage.Header, answers, additionals []dnsmessage.Resource) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, hdr)
	b.EnableCompression()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.StartAnswers())
	add := func(r dnsmessage.Resource) {
		switch body := r.Body.(type) {
		case *dnsmessage.PTRResource:
			must(b.PTRResource(r.Header, *body))
		case *dnsmessage.SRVResource:
			must(b.SRVResource(r.Header, *body))
		case *dnsmessage.TXTResource:
			must(b.TXTResource(r.Header, *body))
		case *dnsmessage.AResource:
			must(b.AResource(r.Header, *body))
		case *dnsmessage.AAAAResource:
			must(b.AAAAResource(r.Header, *body))
		case *dnsmessage.UnknownResource:
			must(b.UnknownResource(r.Header, *body))
		default:
			t.Fatalf("no builder for %T", body)
		}
	}
	for _, r := range answers {
		add(r)
	}
	must(b.StartAdditionals())
	for _, r := range additionals {
		add(r)
	}
	msg, err := b.Finish()
	must(err)
	return msg
}

var mdnsResponseHeader = dnsmessage.Header{Response: true, Authoritative: true}

func rr(name string, typ dnsmessage.Type, ttl uint32, body dnsmessage.ResourceBody) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{
			Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET, TTL: ttl,
		},
		Body: body,
	}
}

func ptrRR(service, target string) dnsmessage.Resource {
	return rr(service, dnsmessage.TypePTR, 4500, &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(target)})
}

func srvRR(name, target string, port uint16) dnsmessage.Resource {
	return rr(name, dnsmessage.TypeSRV, 120, &dnsmessage.SRVResource{Target: dnsmessage.MustNewName(target), Port: port})
}

func txtRR(name string, txt ...string) dnsmessage.Resource {
	return rr(name, dnsmessage.TypeTXT, 4500, &dnsmessage.TXTResource{TXT: txt})
}

func aRR(name string, ip string) dnsmessage.Resource {
	return rr(name, dnsmessage.TypeA, 120, &dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()})
}

// axisAnswer is what an AXIS camera sends for a _axis-video._tcp PTR query.
func axisAnswer(t testing.TB) []byte {
	const inst = "AXIS M3045-V - ACCC8E012345._axis-video._tcp.local."
	return mdnsPacket(t, mdnsResponseHeader,
		[]dnsmessage.Resource{ptrRR("_axis-video._tcp.local.", inst)},
		[]dnsmessage.Resource{
			srvRR(inst, "axis-accc8e012345.local.", 80),
			txtRR(inst, "macaddress=ACCC8E012345"),
			aRR("axis-accc8e012345.local.", "192.168.1.50"),
		})
}

func TestParseMDNSResponse(t *testing.T) {
	const inst = "AXIS M3045-V - ACCC8E012345._axis-video._tcp.local."
	flushSRV := srvRR(inst, "axis.local.", 554)
	flushSRV.Header.Class |= 0x8000 // the cache-flush bit responders set on unique records

	var many []dnsmessage.Resource
	for i := range 300 {
		many = append(many, aRR(fmt.Sprintf("h%d.local.", i), "10.0.0.1"))
	}

	tests := []struct {
		name    string
		packet  []byte
		want    []mdnsRecord
		wantLen int // instead of want, for big packets
		wantErr bool
	}{
		{
			name:   "a PTR answer with SRV, TXT and A additionals",
			packet: axisAnswer(t),
			want: []mdnsRecord{
				{Type: dnsmessage.TypePTR, Name: "_axis-video._tcp.local.", TTL: 4500, Target: inst},
				{Type: dnsmessage.TypeSRV, Name: inst, TTL: 120, Target: "axis-accc8e012345.local.", Port: 80},
				{Type: dnsmessage.TypeTXT, Name: inst, TTL: 4500, Text: []string{"macaddress=ACCC8E012345"}},
				{Type: dnsmessage.TypeA, Name: "axis-accc8e012345.local.", TTL: 120, Addr: netip.MustParseAddr("192.168.1.50")},
			},
		},
		{
			name:   "the cache-flush bit in the class is accepted",
			packet: mdnsPacket(t, mdnsResponseHeader, []dnsmessage.Resource{flushSRV}, nil),
			want:   []mdnsRecord{{Type: dnsmessage.TypeSRV, Name: inst, TTL: 120, Target: "axis.local.", Port: 554}},
		},
		{
			name: "AAAA and unknown types such as NSEC are skipped",
			packet: mdnsPacket(t, mdnsResponseHeader, []dnsmessage.Resource{
				rr("cam.local.", dnsmessage.TypeAAAA, 120, &dnsmessage.AAAAResource{}),
				rr("cam.local.", 47, 120, &dnsmessage.UnknownResource{Type: 47, Data: []byte{0xc0, 0x0c, 0, 1, 0x40}}),
				aRR("cam.local.", "10.0.0.7"),
			}, nil),
			want: []mdnsRecord{{Type: dnsmessage.TypeA, Name: "cam.local.", TTL: 120, Addr: netip.MustParseAddr("10.0.0.7")}},
		},
		{
			name:    "a query's known answers are not taken as answers",
			packet:  mdnsPacket(t, dnsmessage.Header{}, []dnsmessage.Resource{aRR("cam.local.", "10.0.0.7")}, nil),
			wantErr: true,
		},
		{
			name: "a response with an error code is ignored",
			packet: mdnsPacket(t, dnsmessage.Header{Response: true, RCode: dnsmessage.RCodeServerFailure},
				[]dnsmessage.Resource{aRR("cam.local.", "10.0.0.7")}, nil),
			wantErr: true,
		},
		{
			name:    "a truncated packet is refused whole",
			packet:  axisAnswer(t)[:len(axisAnswer(t))-3],
			wantErr: true,
		},
		{
			// Header: response, one answer; the answer's name is a pointer to itself.
			name:    "a compression pointer loop is refused",
			packet:  []byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 120, 0, 4, 10, 0, 0, 1},
			wantErr: true,
		},
		{
			name:    "an empty packet is refused",
			packet:  nil,
			wantErr: true,
		},
		{
			name:    "records beyond the per-packet limit are dropped",
			packet:  mdnsPacket(t, mdnsResponseHeader, many[:200], many[200:]),
			wantLen: mdnsMaxRecords,
		},
		{
			name:    "a packet larger than mDNS allows is refused",
			packet:  append(axisAnswer(t), make([]byte, mdnsMaxPacket)...),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMDNSResponse(tt.packet)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantLen > 0 {
				if len(got) != tt.wantLen {
					t.Errorf("%d records, want %d", len(got), tt.wantLen)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func ptrRec(service, target string, ttl uint32) mdnsRecord {
	return mdnsRecord{Type: dnsmessage.TypePTR, Name: service, Target: target, TTL: ttl}
}

func srvRec(name, target string, port uint16) mdnsRecord {
	return mdnsRecord{Type: dnsmessage.TypeSRV, Name: name, Target: target, Port: port, TTL: 120}
}

func txtRec(name string, txt ...string) mdnsRecord {
	return mdnsRecord{Type: dnsmessage.TypeTXT, Name: name, Text: txt, TTL: 120}
}

func aRec(host, ip string, ttl uint32) mdnsRecord {
	return mdnsRecord{Type: dnsmessage.TypeA, Name: host, Addr: netip.MustParseAddr(ip), TTL: ttl}
}

// brief renders results as "service instance host [ips]:port text".
func brief(list []Service) []string {
	var out []string
	for _, s := range list {
		out = append(out, fmt.Sprintf("%s %s %s %v:%d %s",
			s.Service, s.Instance, s.Host, s.IPv4, s.Port, strings.Join(s.Text, ",")))
	}
	return out
}

func TestMDNSStateJoinsRecords(t *testing.T) {
	const (
		rtsp  = "_rtsp._tcp.local."
		porch = "Porch IPC._rtsp._tcp.local."
	)
	tests := []struct {
		name    string
		packets [][]mdnsRecord
		want    []string
	}{
		{
			name: "PTR in one packet, SRV, TXT and A in later ones",
			packets: [][]mdnsRecord{
				{ptrRec(rtsp, porch, 4500)},
				{srvRec(porch, "ipc-porch.local.", 554), txtRec(porch, "path=/live")},
				{aRec("ipc-porch.local.", "10.0.0.51", 120)},
			},
			want: []string{"_rtsp._tcp Porch IPC ipc-porch.local. [10.0.0.51]:554 path=/live"},
		},
		{
			name: "the address may come before the instance",
			packets: [][]mdnsRecord{
				{aRec("ipc-porch.local.", "10.0.0.51", 120), srvRec(porch, "ipc-porch.local.", 554)},
				{ptrRec(rtsp, porch, 4500)},
			},
			want: []string{"_rtsp._tcp Porch IPC ipc-porch.local. [10.0.0.51]:554 "},
		},
		{
			name: "names compare without case; the instance keeps its own",
			packets: [][]mdnsRecord{{
				ptrRec("_RTSP._TCP.local.", "Porch IPC._RTSP._TCP.LOCAL.", 4500),
				srvRec("porch ipc._rtsp._tcp.local.", "IPC-Porch.local.", 554),
				aRec("ipc-porch.LOCAL.", "10.0.0.51", 120),
			}},
			want: []string{"_rtsp._tcp Porch IPC IPC-Porch.local. [10.0.0.51]:554 "},
		},
		{
			name: "an instance name may hold dots",
			packets: [][]mdnsRecord{{
				ptrRec(rtsp, "Cam v2.1._rtsp._tcp.local.", 4500),
				srvRec("Cam v2.1._rtsp._tcp.local.", "cam.local.", 554),
				aRec("cam.local.", "10.0.0.9", 120),
			}},
			want: []string{"_rtsp._tcp Cam v2.1 cam.local. [10.0.0.9]:554 "},
		},
		{
			name: "addresses are deduplicated and sorted",
			packets: [][]mdnsRecord{{
				ptrRec(rtsp, porch, 4500), srvRec(porch, "ipc.local.", 554),
				aRec("ipc.local.", "10.0.0.60", 120), aRec("ipc.local.", "10.0.0.5", 120), aRec("ipc.local.", "10.0.0.60", 120),
			}},
			want: []string{"_rtsp._tcp Porch IPC ipc.local. [10.0.0.5 10.0.0.60]:554 "},
		},
		{
			name: "a goodbye (TTL 0) removes the instance",
			packets: [][]mdnsRecord{
				{ptrRec(rtsp, porch, 4500), srvRec(porch, "ipc.local.", 554), aRec("ipc.local.", "10.0.0.51", 120)},
				{ptrRec(rtsp, porch, 0)},
			},
		},
		{
			name: "a goodbye for an address removes only that address",
			packets: [][]mdnsRecord{
				{ptrRec(rtsp, porch, 4500), srvRec(porch, "ipc.local.", 554),
					aRec("ipc.local.", "10.0.0.51", 120), aRec("ipc.local.", "10.0.0.52", 120)},
				{aRec("ipc.local.", "10.0.0.51", 0)},
			},
			want: []string{"_rtsp._tcp Porch IPC ipc.local. [10.0.0.52]:554 "},
		},
		{
			name:    "an instance without an address is left out",
			packets: [][]mdnsRecord{{ptrRec(rtsp, porch, 4500), srvRec(porch, "ipc.local.", 554)}},
		},
		{
			name:    "an instance without SRV is left out",
			packets: [][]mdnsRecord{{ptrRec(rtsp, porch, 4500), aRec("ipc.local.", "10.0.0.51", 120)}},
		},
		{
			name: "services not browsed and PTR targets outside the service are ignored",
			packets: [][]mdnsRecord{{
				ptrRec("_ipp._tcp.local.", "Printer._ipp._tcp.local.", 4500),
				srvRec("Printer._ipp._tcp.local.", "printer.local.", 631),
				ptrRec(rtsp, "Elsewhere._ipp._tcp.local.", 4500),
				ptrRec(rtsp, "._rtsp._tcp.local.", 4500),
				aRec("printer.local.", "10.0.0.52", 120),
			}},
		},
		{
			name: "_http._tcp is kept only for what looks like a camera",
			packets: [][]mdnsRecord{{
				ptrRec("_http._tcp.local.", "HP LaserJet 400._http._tcp.local.", 4500),
				srvRec("HP LaserJet 400._http._tcp.local.", "printer.local.", 80),
				aRec("printer.local.", "10.0.0.52", 120),
				ptrRec("_http._tcp.local.", "Hikvision DS-2CD2043G2._http._tcp.local.", 4500),
				srvRec("Hikvision DS-2CD2043G2._http._tcp.local.", "hik.local.", 80),
				aRec("hik.local.", "10.0.0.53", 120),
			}},
			want: []string{"_http._tcp Hikvision DS-2CD2043G2 hik.local. [10.0.0.53]:80 "},
		},
		{
			name: "results are sorted by service, then instance",
			packets: [][]mdnsRecord{{
				ptrRec(rtsp, "b._rtsp._tcp.local.", 4500), srvRec("b._rtsp._tcp.local.", "h.local.", 554),
				ptrRec(rtsp, "a._rtsp._tcp.local.", 4500), srvRec("a._rtsp._tcp.local.", "h.local.", 554),
				ptrRec("_onvif._tcp.local.", "c._onvif._tcp.local.", 4500), srvRec("c._onvif._tcp.local.", "h.local.", 80),
				aRec("h.local.", "10.0.0.1", 120),
			}},
			want: []string{
				"_onvif._tcp c h.local. [10.0.0.1]:80 ",
				"_rtsp._tcp a h.local. [10.0.0.1]:554 ",
				"_rtsp._tcp b h.local. [10.0.0.1]:554 ",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMDNSState(DefaultServices)
			for _, p := range tt.packets {
				s.add(p)
			}
			if got := brief(s.results()); !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestMDNSStateIsBounded(t *testing.T) {
	s := newMDNSState(DefaultServices)
	for i := range 3 * mdnsMaxNames {
		inst := fmt.Sprintf("cam %d._rtsp._tcp.local.", i)
		host := fmt.Sprintf("cam%d.local.", i)
		s.add([]mdnsRecord{ptrRec("_rtsp._tcp.local.", inst, 4500), srvRec(inst, host, 554), txtRec(inst, "x=1"),
			aRec(host, "10.0.0.1", 120)})
	}
	for i := range 3 * mdnsMaxAddrs {
		s.add([]mdnsRecord{aRec("cam0.local.", fmt.Sprintf("10.1.0.%d", i), 120)})
	}
	if len(s.instances) != mdnsMaxInstances || len(s.srv) != mdnsMaxNames || len(s.txt) != mdnsMaxNames ||
		len(s.addrs) != mdnsMaxNames {
		t.Errorf("kept %d instances, %d SRV, %d TXT, %d hosts; want at most %d instances and %d names",
			len(s.instances), len(s.srv), len(s.txt), len(s.addrs), mdnsMaxInstances, mdnsMaxNames)
	}
	if n := len(s.addrs["cam0.local."]); n != mdnsMaxAddrs {
		t.Errorf("kept %d addresses for one host, want %d", n, mdnsMaxAddrs)
	}
	if n := len(s.results()); n != mdnsMaxInstances {
		t.Errorf("%d results, want %d", n, mdnsMaxInstances)
	}
}

func TestMDNSFollowUpsAskForWhatIsMissing(t *testing.T) {
	const porch = "Porch IPC._rtsp._tcp.local."
	questions := func(s *mdnsState) []string {
		var out []string
		for _, q := range s.followUps() {
			out = append(out, q.Type.String()+" "+q.Name.String())
		}
		return out
	}
	s := newMDNSState(DefaultServices)
	s.add([]mdnsRecord{ptrRec("_rtsp._tcp.local.", porch, 4500)})
	steps := []struct {
		then []mdnsRecord
		want []string
	}{
		{nil, []string{"TypeSRV " + porch}},
		{nil, []string{"TypeSRV " + porch}},
		{nil, nil}, // asked twice: a silent responder is not asked forever
		{[]mdnsRecord{srvRec(porch, "ipc-porch.local.", 554)}, []string{"TypeA ipc-porch.local."}},
		{[]mdnsRecord{aRec("ipc-porch.local.", "10.0.0.51", 120)}, nil},
	}
	// An instance whose raw label cannot be written back as a name is not asked about.
	s.add([]mdnsRecord{ptrRec("_rtsp._tcp.local.", "x..y._rtsp._tcp.local.", 4500)})
	for i, st := range steps {
		s.add(st.then)
		if got := questions(s); !slices.Equal(got, st.want) {
			t.Errorf("step %d: asked %q, want %q", i, got, st.want)
		}
	}
}

func TestBuildMDNSQueriesSplitsAndKeepsQUClear(t *testing.T) {
	var qs []dnsmessage.Question
	for i := range 200 {
		name := dnsmessage.MustNewName(fmt.Sprintf("camera number %d._rtsp._tcp.local.", i))
		qs = append(qs, dnsmessage.Question{Name: name, Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET})
	}
	msgs, err := buildMDNSQueries(qs)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 2 {
		t.Fatalf("%d messages for 200 questions, want them split", len(msgs))
	}
	var back []dnsmessage.Question
	for _, m := range msgs {
		if len(m) > 1400 {
			t.Errorf("message of %d bytes", len(m))
		}
		var p dnsmessage.Parser
		h, err := p.Start(m)
		if err != nil {
			t.Fatal(err)
		}
		if h.ID != 0 || h.Response {
			t.Errorf("header %+v: want a query with ID 0 (RFC 6762 §18.1)", h)
		}
		got, err := p.AllQuestions()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range got {
			if q.Class&0x8000 != 0 {
				t.Errorf("%s asks for a unicast answer", q.Name)
			}
		}
		back = append(back, got...)
	}
	if !reflect.DeepEqual(back, qs) {
		t.Errorf("questions changed on the way: %d back of %d", len(back), len(qs))
	}
	if msgs, err := buildMDNSQueries(nil); err != nil || len(msgs) != 0 {
		t.Errorf("no questions: %d messages, %v", len(msgs), err)
	}
}

func FuzzParseMDNS(f *testing.F) {
	f.Add(axisAnswer(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseMDNSResponse(data)
		if err != nil {
			return
		}
		if len(recs) > mdnsMaxRecords {
			t.Fatalf("%d records from one packet", len(recs))
		}
		s := newMDNSState(DefaultServices)
		s.add(recs)
		s.add(recs)
		if len(s.results()) > mdnsMaxInstances {
			t.Fatal("more results than instances allowed")
		}
		if _, err := buildMDNSQueries(s.followUps()); err != nil {
			t.Fatalf("follow-up questions from a parsed packet do not pack: %v", err)
		}
	})
}
