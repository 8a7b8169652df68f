package mdns

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/net/dns/dnsmessage"
)

// Bounds on what one browse accepts from the LAN: any host may answer, and a broken or hostile
// one must cost bounded memory and time.
const (
	mdnsMaxPacket    = 9000 // RFC 6762 §17: the largest mDNS message
	mdnsMaxRecords   = 256  // records kept from one packet (answers and additionals)
	mdnsMaxTXT       = 64   // strings kept from one TXT record
	mdnsMaxInstances = 512  // instances per browse
	mdnsMaxNames     = 1024 // SRV, TXT and host entries per browse, each
	mdnsMaxAddrs     = 8    // IPv4 addresses per host
)

var errNotMDNSResponse = errors.New("not an mDNS response")

// mdnsRecord is the part of a resource record DNS-SD browsing uses. Names keep the case and
// the raw label bytes of the wire: dnsmessage does not escape dots or spaces inside labels.
type mdnsRecord struct {
	Type   dnsmessage.Type
	Name   string
	TTL    uint32
	Target string // PTR and SRV
	Port   uint16 // SRV
	Text   []string
	Addr   netip.Addr // A
}

// parseMDNSResponse returns the PTR, SRV, TXT and A records of the answer and additional
// sections of an mDNS response. Queries (which carry other hosts' known answers) and responses
// with a non-zero opcode or rcode are refused, as RFC 6762 §18 asks; a packet that does not
// parse to its end is refused whole.
func parseMDNSResponse(b []byte) ([]mdnsRecord, error) {
	if len(b) > mdnsMaxPacket {
		return nil, fmt.Errorf("mdns: packet of %d bytes", len(b))
	}
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil {
		return nil, fmt.Errorf("mdns: header: %w", err)
	}
	if !h.Response || h.OpCode != 0 || h.RCode != dnsmessage.RCodeSuccess {
		return nil, errNotMDNSResponse
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, fmt.Errorf("mdns: questions: %w", err)
	}
	var recs []mdnsRecord
	recs, err = parseMDNSSection(&p, recs, p.AnswerHeader, p.SkipAnswer)
	if err != nil {
		return nil, fmt.Errorf("mdns: answers: %w", err)
	}
	if len(recs) >= mdnsMaxRecords {
		return recs, nil
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return nil, fmt.Errorf("mdns: authorities: %w", err)
	}
	recs, err = parseMDNSSection(&p, recs, p.AdditionalHeader, p.SkipAdditional)
	if err != nil {
		return nil, fmt.Errorf("mdns: additionals: %w", err)
	}
	return recs, nil
}

// parseMDNSSection appends one section's records, stopping quietly at mdnsMaxRecords.
// The resource body methods of dnsmessage.Parser read whichever section the header came from.
func parseMDNSSection(
	p *dnsmessage.Parser, recs []mdnsRecord, header func() (dnsmessage.ResourceHeader, error), skip func() error,
) ([]mdnsRecord, error) {
	for len(recs) < mdnsMaxRecords {
		rh, err := header()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return recs, nil
		}
		if err != nil {
			return nil, err
		}
		r := mdnsRecord{Type: rh.Type, Name: rh.Name.String(), TTL: rh.TTL}
		switch rh.Type {
		case dnsmessage.TypePTR:
			body, err := p.PTRResource()
			if err != nil {
				return nil, err
			}
			r.Target = body.PTR.String()
		case dnsmessage.TypeSRV:
			body, err := p.SRVResource()
			if err != nil {
				return nil, err
			}
			r.Target, r.Port = body.Target.String(), body.Port
		case dnsmessage.TypeTXT:
			body, err := p.TXTResource()
			if err != nil {
				return nil, err
			}
			r.Text = body.TXT[:min(len(body.TXT), mdnsMaxTXT)]
		case dnsmessage.TypeA:
			body, err := p.AResource()
			if err != nil {
				return nil, err
			}
			r.Addr = netip.AddrFrom4(body.A)
		default:
			if err := skip(); err != nil {
				return nil, err
			}
			continue
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// buildMDNSQueries packs questions into as many query messages as needed to keep each well
// under a typical MTU. Every question asks for a multicast answer (the QU bit is clear): other
// browsers on the LAN then see the answers too, and a responder may rate-limit unicast ones.
func buildMDNSQueries(qs []dnsmessage.Question) ([][]byte, error) {
	const budget = 1200 // bytes of uncompressed questions per message
	var (
		out   [][]byte
		chunk []dnsmessage.Question
		size  int
	)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{})
		b.EnableCompression()
		if err := b.StartQuestions(); err != nil {
			return err
		}
		for _, q := range chunk {
			if err := b.Question(q); err != nil {
				return fmt.Errorf("mdns: question %s: %w", q.Name.String(), err)
			}
		}
		msg, err := b.Finish()
		if err != nil {
			return err
		}
		out = append(out, msg)
		chunk, size = chunk[:0], 0
		return nil
	}
	for _, q := range qs {
		n := int(q.Name.Length) + 2 + 4
		if size+n > budget {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		chunk = append(chunk, q)
		size += n
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
