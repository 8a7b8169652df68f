//go:build !unix

package rtsp

// newChunk allocates a cache chunk on the Go heap where no anonymous mapping is to be had.
func newChunk() []byte { return make([]byte, cacheChunk) }

// freeChunk leaves the chunk to the collector.
func freeChunk([]byte) {}
