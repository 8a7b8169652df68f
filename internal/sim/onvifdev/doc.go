// Package onvifdev is a simulated ONVIF camera for tests and `camgate demo`: device, media (ver10
// and ver20), PTZ and events (PullPoint unless NoPullPoint, and Basic Notification: it POSTs
// wsnt:Notify to subscribed consumers) over HTTP with a chosen clock skew and authentication
// mode, and WS-Discovery (answers to probes, Hello and Bye) on a multicast group and interface
// address given in its config.
//
// It describes a camera whose RTSP URLs and snapshot JPEG come from its config; it does not serve
// video itself. It must only listen on loopback or inside a network namespace a test made.
package onvifdev
