package rtsp

import (
	"syscall"
	"unsafe"
)

// readNow and writeNow are read(2) and write(2) on a non-blocking socket, called without
// entering the scheduler's system-call state. Such a call returns at once (EAGAIN rather than
// wait), so there is nothing to hand the processor over for; and every call that does enter
// that state also wakes the runtime's sysmon thread from its sleep, which then sleeps 20 µs
// and goes back to sleep: three context switches per wake-up of a relay that moves one batch,
// which bench/relay found to be a fixed share of a lone relay's cost (bench/README.md).
func readNow(fd int, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func writeNow(fd int, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
