package lan

import (
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// routeTimeout bounds one question to the kernel; it answers in microseconds, so hitting this
// means something is badly wrong and the connection is refused.
const routeTimeout = time.Second

// routeSeq numbers the request. Each goes on a socket of its own that joins no multicast group,
// so the kernel's answer is the only thing it can receive, and one constant number suffices.
const routeSeq = 1

// systemRouteOut asks the kernel (RTM_GETROUTE) which interface a packet to peer, sent from
// local, would leave by: the reverse path of the connection.
func systemRouteOut(peer, local netip.Addr) (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("netlink socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("netlink bind: %w", err)
	}
	tv := syscall.NsecToTimeval(routeTimeout.Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return 0, fmt.Errorf("netlink timeout: %w", err)
	}
	kernel := &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}
	if err := syscall.Sendto(fd, routeRequest(routeSeq, peer, local), 0, kernel); err != nil {
		return 0, fmt.Errorf("netlink route request: %w", err)
	}
	buf := make([]byte, maxRouteReply)
	for range 8 { // a private socket gets only our answer; stray datagrams are skipped, boundedly
		n, from, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, fmt.Errorf("netlink route reply: %w", err)
		}
		if nl, ok := from.(*syscall.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue // only the kernel answers route requests
		}
		oif, done, err := parseRouteReply(buf[:n], routeSeq)
		if done {
			if err != nil {
				return 0, fmt.Errorf("route to %v: %w", peer, err)
			}
			return oif, nil
		}
	}
	return 0, fmt.Errorf("route to %v: no reply to the request", peer)
}
