package rtsp

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"testing"
	"time"
)

// tryFlush writes only what the socket takes without waiting and keeps the rest, in order, for
// flush: a peer that stops reading costs the camera side nothing, and loses no byte.
func TestTryFlushKeepsWhatTheSocketDidNotTake(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	u, _ := url.Parse("rtsp://" + l.Addr().String() + "/x")
	c, err := dialRTSP(context.Background(), u, 10*time.Second, 4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	peer := <-accepted
	defer peer.Close()

	// Nobody reads yet: append and try until the socket refuses part of it.
	var want bytes.Buffer
	chunk := make([]byte, 64<<10)
	for i := 0; ; i++ {
		if i == 4096 {
			t.Fatal("256 MB taken without waiting by a peer that does not read")
		}
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		c.out = append(c.out, chunk...)
		want.Write(chunk)
		if !c.tryFlush() {
			break
		}
	}
	if len(c.out) == 0 {
		t.Fatal("tryFlush reported a partial write but kept nothing")
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(want.Len())))
		got <- b
	}()
	if err := c.flush(); err != nil {
		t.Fatalf("flush after the peer reads again: %v", err)
	}
	c.close() // so that a short stream ends the peer's read instead of hanging it
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, not the %d written in order", len(b), want.Len())
	}
}
