//go:build unix

package rtsp

import "syscall"

// newChunk maps a cache chunk outside the Go heap. Cached GOPs are the largest live memory of
// the process; on the heap they would raise the collector's goal (GOGC) by as much again, and
// the process would keep that much more garbage resident. A chunk holds no pointers, so the
// collector need not see it. It returns nil when the system has no memory to map.
func newChunk() []byte {
	b, err := syscall.Mmap(-1, 0, cacheChunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	return b
}

// freeChunk returns a chunk's memory to the system at once.
func freeChunk(b []byte) { _ = syscall.Munmap(b) }
