//go:build !linux

package rtsp

import (
	"errors"
	"syscall"
)

// readNow and writeNow are plain system calls where rawio_linux.go's are not known to hold.
func readNow(fd int, b []byte) (int, syscall.Errno) { return errnoOf(syscall.Read(fd, b)) }

func writeNow(fd int, b []byte) (int, syscall.Errno) { return errnoOf(syscall.Write(fd, b)) }

func errnoOf(n int, err error) (int, syscall.Errno) {
	var e syscall.Errno
	if errors.As(err, &e) {
		return 0, e
	}
	return max(n, 0), 0
}
