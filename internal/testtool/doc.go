// Package testtool holds helpers for tests and bench programs: finding the real peer programs
// they talk to, and running peer servers (mosquitto, any daemon that listens) on loopback. The
// daemon must not import it.
package testtool
