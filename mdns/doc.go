// Package mdns browses the LAN for cameras' DNS-SD services (_rtsp._tcp, _onvif._tcp,
// _axis-video._tcp, camera-looking _http._tcp) with a one-shot multicast DNS query (Browse).
//
// It is a small querier of its own on x/net/dns/dnsmessage rather than a library: the one it
// replaced pulled a whole DNS implementation into a router binary that must fit in flash. Per
// interface it binds 224.0.0.251:5353 with SO_REUSEADDR and SO_REUSEPORT, so that it coexists
// with avahi-daemon or umdns already on the gateway, and asks for the SRV and A records that
// terse responders leave out.
//
// It only turns answers into plain Go values: it must not import the agent, the store or
// other protocol packages, and never answers queries (it is no responder). Every packet is
// hostile: memory per packet and per browse is bounded (msg.go), and a malformed packet is
// dropped without changing what was heard.
package mdns
