// Package testtool holds helpers for tests. It is imported only by _test.go files; the daemon
// must not import it.
package testtool
