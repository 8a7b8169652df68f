// Package lan decides who may talk to camgate's local services (the SMTP alarm server and the
// pairing page) and enforces it on a net.Listener before a single byte is written.
//
// With no allow list the policy is "the home LAN": loopback, link-local and private ranges
// (RFC 1918, RFC 4193), but never a connection that arrived through the interface holding the
// default route, because on a home gateway that interface faces the ISP. An explicit allow list
// replaces all of that: then only the listed CIDRs get in, whatever the interface.
//
// The same rule picks the interfaces that discovery (WS-Discovery, mDNS) multicasts on
// (MulticastInterfaces): never the one holding the default route.
package lan
