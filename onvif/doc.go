// Package onvif finds cameras (WS-Discovery probes, Hello and Bye) and talks to them over
// ONVIF SOAP: device information, media profiles and stream URIs, snapshots, PTZ and event
// subscriptions, with clock-skew correction.
//
// It turns SOAP into plain Go values and must not import the agent, the store or other protocol
// packages. Every request it sends has a timeout; every answer it parses may be hostile.
//
// # SOAP
//
// A thin layer on encoding/xml, not a generated client: answers are parsed into a small element
// tree (at most 1 MiB, 64 levels, 20000 elements) and read by local names only, because vendors
// disagree on prefixes, namespaces and even the SOAP version. Requests are SOAP 1.2 with the
// action in the Content-Type.
//
// # Authentication
//
// A Client sends a WS-Security UsernameToken (PasswordDigest) whose Created is the device's clock:
// ours moved by the offset GetSystemDateAndTime measured (SyncClock; Inventory does it first,
// and a NotAuthorized fault before any measurement triggers one). When the device answers HTTP 401
// it switches to HTTP Digest (MD5 or SHA-256, qop=auth) or Basic, as challenged, and keeps using
// that. Credentials refused every way give an *AuthError naming the device and user;
// errors.Is(err, ErrUnauthorized) holds for it and for NotAuthorized faults.
//
// # Addresses
//
// Cameras report service XAddrs and URIs with 0.0.0.0, loopback, link-local or pre-NAT hosts.
// Service XAddrs are moved to the scheme, host and port the device service was reached on;
// stream and snapshot URIs get the device's host and keep their own port (an http URI without a
// port takes the device service's). WS-Discovery XAddrs are fixed with the datagram's source.
//
// # Long-lived parts
//
// Discoverer (WS-Discovery), PullPoint (events pulled from the camera) and BasicNotification
// (events the camera posts to a NotifyReceiver, for cameras without PullPoint) are structs with a
// constructor and Run(ctx); Inventory and Discover are one-shot. mDNS lives in package mdns; both
// pick their interfaces with internal/lan's MulticastInterfaces.
package onvif
