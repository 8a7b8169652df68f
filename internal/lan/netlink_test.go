package lan

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

// nlMsg frames one netlink message as the kernel does (length, type, flags, seq, pid 0), padded.
func nlMsg(typ uint16, seq uint32, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(body)+3)
	binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// routeBody is an rtmsg with RTA_TABLE, RTA_DST and, when oif > 0, RTA_OIF, as an RTM_NEWROUTE
// answer to RTM_GETROUTE carries them.
func routeBody(oif int) []byte {
	b := make([]byte, rtMsgLen)
	b[0], b[1] = afInet, 32
	var table [4]byte
	binary.NativeEndian.PutUint32(table[:], 254)
	b = appendAttr(b, 15, table[:]) // RTA_TABLE
	b = appendAttr(b, rtaDst, []byte{10, 1, 0, 2})
	if oif > 0 {
		var v [4]byte
		binary.NativeEndian.PutUint32(v[:], uint32(oif))
		b = appendAttr(b, rtaOif, v[:])
	}
	return b
}

func errBody(errno int32) []byte {
	b := make([]byte, 4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b, uint32(errno))
	return b
}

func TestParseRouteReply(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantOif  int
		wantDone bool
		wantErr  error // nil: none; errAny: some error
	}{
		{"route with an output interface", nlMsg(rtmNewRoute, 7, routeBody(3)), 3, true, nil},
		{"kernel error", nlMsg(nlmsgError, 7, errBody(-int32(syscall.ENETUNREACH))), 0, true, syscall.ENETUNREACH},
		{"acknowledgement is no route", nlMsg(nlmsgError, 7, errBody(0)), 0, true, errNoOif},
		{"route without RTA_OIF", nlMsg(rtmNewRoute, 7, routeBody(0)), 0, true, errNoOif},
		{"someone else's message, then ours", append(nlMsg(rtmNewRoute, 6, routeBody(9)),
			nlMsg(rtmNewRoute, 7, routeBody(4))...), 4, true, nil},
		{"only someone else's message", nlMsg(rtmNewRoute, 6, routeBody(9)), 0, false, nil},
		{"empty datagram", nil, 0, false, nil},
		{"length beyond the datagram", nlMsg(rtmNewRoute, 7, routeBody(3))[:20], 0, true, errAny},
		{"short rtmsg", nlMsg(rtmNewRoute, 7, []byte{2, 32}), 0, true, errAny},
		{"short error", nlMsg(nlmsgError, 7, []byte{1}), 0, true, errAny},
		{"unexpected type", nlMsg(3, 7, nil), 0, true, errAny},
		{"attribute longer than the message", nlMsg(rtmNewRoute, 7, append(make([]byte, rtMsgLen), 200, 0, 4, 0)),
			0, true, errAny},
		{"RTA_OIF of the wrong size", nlMsg(rtmNewRoute, 7, appendAttr(make([]byte, rtMsgLen), rtaOif, []byte{1, 2})),
			0, true, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oif, done, err := parseRouteReply(tt.in, 7)
			if oif != tt.wantOif || done != tt.wantDone {
				t.Errorf("got interface %d, done %v; want %d, %v", oif, done, tt.wantOif, tt.wantDone)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case errors.Is(tt.wantErr, errAny) && err == nil:
				t.Error("no error for a malformed reply")
			case tt.wantErr != nil && !errors.Is(tt.wantErr, errAny) && !errors.Is(err, tt.wantErr):
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

// The request is what rtnetlink(7) describes: RTM_GETROUTE, an rtmsg of the peer's family with a
// full-length destination, RTA_DST, and RTA_SRC only when the source is of the same family.
func TestRouteRequest(t *testing.T) {
	tests := []struct {
		name       string
		dst, src   string
		wantLen    int
		wantFamily byte
		wantSrcLen byte
	}{
		{"IPv4 with source", "10.1.0.2", "10.1.0.1", 16 + 12 + 8 + 8, afInet, 32},
		{"IPv6 with source", "fd00::2", "fd00::1", 16 + 12 + 20 + 20, afInet6, 128},
		{"IPv4 without source", "10.1.0.2", "", 16 + 12 + 8, afInet, 0},
		{"families differ: no source", "10.1.0.2", "fd00::1", 16 + 12 + 8, afInet, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src netip.Addr
			if tt.src != "" {
				src = netip.MustParseAddr(tt.src)
			}
			b := routeRequest(5, netip.MustParseAddr(tt.dst), src)
			ne := binary.NativeEndian
			if len(b) != tt.wantLen || int(ne.Uint32(b)) != len(b) {
				t.Fatalf("request of %d bytes (header says %d), want %d", len(b), ne.Uint32(b), tt.wantLen)
			}
			if ne.Uint16(b[4:]) != rtmGetRoute || ne.Uint16(b[6:]) != nlmFRequest || ne.Uint32(b[8:]) != 5 {
				t.Errorf("header % x", b[:nlmsgHdrLen])
			}
			if rtm := b[nlmsgHdrLen:]; rtm[0] != tt.wantFamily || rtm[2] != tt.wantSrcLen {
				t.Errorf("rtmsg % x: family %d, src_len %d", rtm[:rtMsgLen], rtm[0], rtm[2])
			}
		})
	}
}
