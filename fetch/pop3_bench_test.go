package fetch

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/testbed"
	"github.com/mailark/mailark/internal/testkit"
)

// latencyProxy forwards TCP connections to target, delaying every chunk
// by half the round-trip time in each direction (a long, fat link).
type latencyProxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
}

func newLatencyProxy(tb testing.TB, target string, rtt time.Duration) *latencyProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &latencyProxy{ln: ln, target: target, oneWay: rtt / 2}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

type delayed struct {
	at   time.Time
	data []byte
}

func (p *latencyProxy) pipe(from, to net.Conn) {
	q := make(chan delayed, 4096)
	go func() {
		defer to.Close()
		for d := range q {
			time.Sleep(time.Until(d.at))
			if _, err := to.Write(d.data); err != nil {
				return
			}
		}
	}()
	defer close(q)
	for {
		buf := make([]byte, 64<<10)
		n, err := from.Read(buf)
		if n > 0 {
			q <- delayed{at: time.Now().Add(p.oneWay), data: buf[:n]}
		}
		if err != nil {
			return
		}
	}
}

// BenchmarkPOP3DovecotFetch measures a full fetch of 2,000 messages from
// Dovecot into a fresh archive, with and without pipelining, on loopback
// and with 20 ms of added round-trip time.
func BenchmarkPOP3DovecotFetch(b *testing.B) {
	s := testbed.Start(b)
	user := s.AddUser(b, "bench")
	const n = 2000
	msgs := testbed.GenMessages(77, n, testbed.GenOptions{})
	var total int64
	for _, m := range msgs {
		total += int64(len(m.Raw))
	}
	s.Import(b, user, msgs)
	for _, rtt := range []time.Duration{0, 20 * time.Millisecond} {
		addr := s.POP3Addr()
		if rtt > 0 {
			addr = newLatencyProxy(b, addr, rtt).ln.Addr().String()
		}
		for _, window := range []int{1, 0} {
			for _, format := range popFormats {
				name := fmt.Sprintf("rtt=%v/pipelining=%v/%s", rtt, window != 1, format)
				b.Run(name, func(b *testing.B) {
					a, err := account.ParseURL("pop3://"+user+"@"+addr, account.ParseOptions{})
					if err != nil {
						b.Fatal(err)
					}
					a.Secret = testkit.Secret(testbed.Password)
					var elapsed time.Duration
					for b.Loop() {
						dir := b.TempDir()
						arc, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{})
						if err != nil {
							b.Fatal(err)
						}
						start := time.Now()
						res, err := POP3(context.Background(), a, arc, Options{POP3Window: window})
						elapsed += time.Since(start)
						arc.Close()
						if err != nil || res.NewMessages != n {
							b.Fatalf("%v, %d fetched", err, res.NewMessages)
						}
					}
					b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "msgs/s")
					b.ReportMetric(float64(total*int64(b.N))/elapsed.Seconds()/(1<<20), "MB/s")
				})
			}
		}
	}
}
