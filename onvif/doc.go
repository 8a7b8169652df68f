// Package onvif finds cameras (WS-Discovery probes, Hello and Bye) and talks to them over ONVIF
// SOAP: device information, media profiles and stream URIs, snapshots, PTZ and event
// subscriptions, with clock-skew correction.
//
// It turns SOAP into plain Go values and must not import the agent, the store or other protocol
// packages. Every request it sends has a timeout; every answer it parses may be hostile.
package onvif
