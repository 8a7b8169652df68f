// Package lan decides who may talk to camgate's local services (the SMTP alarm server and the
// pairing page) and enforces it on a net.Listener before a single byte is written.
//
// With no allow list the policy is "the home LAN": loopback, link-local and private ranges
// (RFC 1918, RFC 4193), but never a connection from the side of the interface holding the
// default route, because on a home gateway that interface faces the ISP. The side is the
// interface the route back to the peer leaves by (asked of the kernel over rtnetlink), or for a
// link-local peer the interface the kernel names in its zone; never the local address, which
// Linux accepts on any interface. When that cannot be found out the connection is refused. An
// explicit allow list replaces all of that: then only the listed CIDRs get in, whatever the
// interface.
//
// The same rule picks the interfaces that discovery (WS-Discovery, mDNS) multicasts on
// (MulticastInterfaces): never the one holding the default route.
//
// It must not write to a refused connection, and must not do network I/O: the only questions it
// asks go to the local kernel.
package lan
