// Package netnstest runs a test's body inside a network namespace of its own, holding only a
// loopback interface, so that multicast tests (WS-Discovery, mDNS) can never reach a real network.
// Inside it, a test may add other hosts (Peer: namespaces of their own, joined by veth links) and
// the home gateway network HomeGateway draws, to see what arrives from which side.
//
// It is for tests only: it re-executes the test binary with CLONE_NEWNET, and the namespace dies
// with that child even if the test is killed. It refuses to configure anything outside Run.
package netnstest
