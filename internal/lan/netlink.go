package lan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// Constants from linux/netlink.h and linux/rtnetlink.h, spelled out so that the message code
// builds (and is fuzzed) on every platform; only route_linux.go sends it.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	rtMsgLen    = 12 // struct rtmsg
	rtAttrHdr   = 4  // struct rtattr

	nlmsgError    = 2  // NLMSG_ERROR
	rtmNewRoute   = 24 // RTM_NEWROUTE
	rtmGetRoute   = 26 // RTM_GETROUTE
	nlmFRequest   = 1  // NLM_F_REQUEST
	rtaDst        = 1  // RTA_DST
	rtaSrc        = 2  // RTA_SRC
	rtaOif        = 4  // RTA_OIF
	afInet        = 2  // AF_INET
	afInet6       = 10 // AF_INET6
	maxRouteReply = 8 << 10
	nlaTypeMask   = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

var errNoOif = errors.New("route reply without an output interface")

// routeRequest builds an RTM_GETROUTE request asking the kernel which way a packet to dst would
// leave, from the local address src when it is valid and of dst's family (so that source-based
// policy routing answers as it would for our reply).
func routeRequest(seq uint32, dst, src netip.Addr) []byte {
	family, bits := uint8(afInet), uint8(32)
	if !dst.Is4() {
		family, bits = afInet6, 128
	}
	withSrc := src.IsValid() && src.Is4() == dst.Is4()
	n := nlmsgHdrLen + rtMsgLen + rtAttrHdr + int(bits)/8
	if withSrc {
		n += rtAttrHdr + int(bits)/8
	}
	b := make([]byte, nlmsgHdrLen, n)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint16(b[4:], rtmGetRoute)
	ne.PutUint16(b[6:], nlmFRequest)
	ne.PutUint32(b[8:], seq)
	// pid 0: the kernel fills in the port of the socket the request came from.
	rtm := [rtMsgLen]byte{0: family, 1: bits}
	if withSrc {
		rtm[2] = bits
	}
	b = append(b, rtm[:]...)
	b = appendAttr(b, rtaDst, dst.AsSlice())
	if withSrc {
		b = appendAttr(b, rtaSrc, src.AsSlice())
	}
	return b
}

// appendAttr appends one rtattr; addresses are 4 or 16 bytes, so no padding is ever needed.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	var h [rtAttrHdr]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(rtAttrHdr+len(data)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	return append(append(b, h[:]...), data...)
}

// parseRouteReply finds, in one datagram of the kernel's answer, the reply to request seq and
// returns its output interface index. done is false when the datagram holds no message for seq
// (the caller reads on). A kernel error comes back as the syscall.Errno it carries.
func parseRouteReply(b []byte, seq uint32) (oif int, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		n := int(ne.Uint32(b[0:]))
		if n < nlmsgHdrLen || n > len(b) {
			return 0, true, fmt.Errorf("netlink message length %d of %d bytes", n, len(b))
		}
		typ, mseq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		body := b[nlmsgHdrLen:n]
		b = b[min(align4(n), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case nlmsgError:
			if len(body) < 4 {
				return 0, true, errors.New("short netlink error message")
			}
			code := int32(ne.Uint32(body))
			if code == 0 {
				return 0, true, errNoOif // an acknowledgement, not a route
			}
			return 0, true, syscall.Errno(-int64(code))
		case rtmNewRoute:
			oif, err := routeOif(body)
			return oif, true, err
		default:
			return 0, true, fmt.Errorf("unexpected netlink message type %d", typ)
		}
	}
	return 0, false, nil
}

// routeOif reads RTA_OIF from an rtmsg and its attributes.
func routeOif(b []byte) (int, error) {
	if len(b) < rtMsgLen {
		return 0, errors.New("short rtmsg")
	}
	ne := binary.NativeEndian
	for a := b[rtMsgLen:]; len(a) >= rtAttrHdr; {
		n := int(ne.Uint16(a[0:]))
		if n < rtAttrHdr || n > len(a) {
			return 0, fmt.Errorf("route attribute length %d of %d bytes", n, len(a))
		}
		if ne.Uint16(a[2:])&nlaTypeMask == rtaOif {
			if n != rtAttrHdr+4 {
				return 0, fmt.Errorf("RTA_OIF of %d bytes", n-rtAttrHdr)
			}
			return int(ne.Uint32(a[rtAttrHdr:])), nil
		}
		a = a[min(align4(n), len(a)):]
	}
	return 0, errNoOif
}

func align4(n int) int { return (n + 3) &^ 3 }
