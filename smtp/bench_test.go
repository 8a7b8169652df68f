package smtp

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkDataToHandler measures, on loopback, the time from the client's last byte of DATA
// (the terminating ".") to the Handler call, for a camera-like mail: GB2312 subject, text part,
// 200 kB JPEG. The target is p99 under 50 ms over 1,000 mails:
//
//	go test -run '^$' -bench DataToHandler -benchtime 1000x ./smtp/
func BenchmarkDataToHandler(b *testing.B) {
	called := make(chan time.Time, 1)
	srv, err := NewServer(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		func(ctx context.Context, a Alarm) error {
			if !a.Motion || len(a.Snapshot) == 0 {
				panic("benchmark mail not understood")
			}
			called <- time.Now()
			return nil
		})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Listen(ctx); err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Run(ctx) }()

	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	expect := func(code string) {
		for {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, code) {
				b.Fatalf("reply %q (%v), want %s", line, err, code)
			}
			if line[3] != '-' {
				return
			}
		}
	}
	send := func(s string) {
		if _, err := io.WriteString(conn, s); err != nil {
			b.Fatal(err)
		}
	}
	expect("220")
	send("EHLO cam\r\n")
	expect("250")
	mail := benchMail()
	b.SetBytes(int64(len(mail)))

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		send("MAIL FROM:<cam@x>\r\nRCPT TO:<cam-001122334455@gw>\r\nDATA\r\n")
		expect("250")
		expect("250")
		expect("354")
		send(mail)
		start := time.Now()
		send(".\r\n")
		lat = append(lat, (<-called).Sub(start))
		expect("250")
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

func benchMail() string {
	rng := rand.New(rand.NewPCG(1, 2))
	jpeg := make([]byte, 200<<10)
	for i := range jpeg {
		jpeg[i] = byte(rng.Uint32())
	}
	copy(jpeg, []byte{0xFF, 0xD8, 0xFF, 0xE0})
	enc := base64.StdEncoding.EncodeToString(jpeg)
	var sb strings.Builder
	sb.WriteString("Subject: =?GB2312?B?0sa2r9XssuKxqL6v?=\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n" +
		"Content-Type: text/plain; charset=GB2312\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"sai+r8Dg0M06INLGtq/V7LLiDQrJ6LG4w/uzxjogSVBDYW1lcmENCs2otcC6xTogMQ0Ksai+r8qx\r\n\r\n--b\r\n" +
		"Content-Type: image/jpeg; name=\"ch01.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc + "\r\n--b--\r\n")
	return sb.String()
}
