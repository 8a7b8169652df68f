// Command discovery measures the time from starting camgate's ONVIF discovery to the full
// inventory (device information, profiles, stream URIs) of 20 simulated cameras (-cameras),
// once event-driven (onvif.Discoverer) and once as the one-shot scan `camgate discover` does.
//
// The cameras are internal/sim/onvifdev devices, each on its own address, answering
// WS-Discovery and requiring WS-Security credentials like real cameras. Everything runs in a
// child process inside a network namespace of its own holding only loopback (re-executed with
// CLONE_NEWNET), so no multicast can reach a real network.
//
//	go run ./bench/discovery -rounds 5
package main
