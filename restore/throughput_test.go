package restore

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/testbed"
)

// TestRestoreThroughput measures restore speed into Dovecot with and
// without MULTIAPPEND, on loopback and with added round-trip latency. It
// runs only with MAILARK_RESTORE_BENCH=N (N messages); make bench is the
// place for comparisons with other tools.
func TestRestoreThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MAILARK_RESTORE_BENCH"))
	if n <= 0 {
		t.Skip("set MAILARK_RESTORE_BENCH=5000 to measure")
	}
	srv := testbed.Start(t)
	msgs := testbed.GenMessages(99, n, testbed.GenOptions{Folders: []string{"INBOX", "INBOX", "INBOX", "Sent", "Work/a", "Work/b"}})
	_, arch := buildArchive(t, archive.Maildir, msgs, bedSpecialUse)
	defer arch.Close()
	var bytes int64
	for _, m := range msgs {
		bytes += int64(len(m.Raw))
	}
	t.Logf("%d messages, %.1f MB", n, float64(bytes)/1e6)
	for _, rtt := range []time.Duration{0, 20 * time.Millisecond, 0} {
		port := srv.IMAPPort
		if rtt > 0 {
			port = latencyProxy(t, fmt.Sprintf("%s:%d", srv.Host, srv.IMAPPort), rtt/2)
		}
		for _, conns := range []int{1, 4} {
			for _, multi := range []bool{true, false} {
				user := srv.AddUser(t, fmt.Sprintf("bench-%d-%d-%v-%d", rtt.Milliseconds(), conns, multi, time.Now().UnixNano()%1e6))
				a := bedAccount(srv, user)
				a.Port = port
				start := time.Now()
				res, err := Restore(context.Background(), arch, nil, a, Options{Connections: conns, NoMultiAppend: !multi})
				if err != nil || res.Uploaded != n {
					t.Fatalf("restore: %v, %d uploaded", err, res.Uploaded)
				}
				d := time.Since(start)
				t.Logf("rtt %v, %d connections, multiappend %-5v: %6.2f s  %6.0f msg/s  %5.1f MB/s", rtt, conns, multi,
					d.Seconds(), float64(n)/d.Seconds(), float64(bytes)/1e6/d.Seconds())
			}
		}
	}
}

// latencyProxy forwards loopback TCP to addr, delaying every chunk by
// oneWay in each direction without limiting throughput.
func latencyProxy(t *testing.T, addr string, oneWay time.Duration) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go delayCopy(s, c, oneWay)
			go delayCopy(c, s, oneWay)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func delayCopy(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 4096)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{buf[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, src)
}
