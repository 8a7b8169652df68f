// Package netnstest runs a test's body inside a network namespace of its own, holding only a
// loopback interface, so that multicast tests (WS-Discovery, mDNS) can never reach a real network.
//
// It is for tests only: it re-executes the test binary with CLONE_NEWNET, and the namespace dies
// with that child even if the test is killed.
package netnstest
