package imaptest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a Proxy does to one connection's server-to-client stream.
type Fault struct {
	CutAfter   int64         // reset the connection after this many bytes (0: never)
	StallAfter int64         // stop forwarding (but keep the connection) after this many bytes (0: never)
	Trickle    time.Duration // pause between chunks of at most 512 bytes (0: full speed)
	TrickleFor int64         // bytes sent trickling before full speed (0: all of them)
}

// Proxy forwards loopback TCP connections to a server and injects faults:
// connection resets in the middle of a literal, stalls beyond a timeout,
// slow trickles. The fault for each new connection comes from Plan
// (connection numbers start at 1).
type Proxy struct {
	Addr string
	Host string
	Port int

	Plan func(conn int) Fault

	target string
	ln     net.Listener
	n      atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

// StartProxy forwards to target until the test ends.
func StartProxy(t testing.TB, target string, plan func(conn int) Fault) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Plan: plan, target: target, ln: ln, Addr: ln.Addr().String(), Host: "127.0.0.1",
		Port: ln.Addr().(*net.TCPAddr).Port}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Connections is the number of connections accepted so far.
func (p *Proxy) Connections() int { return int(p.n.Load()) }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		n := int(p.n.Add(1))
		var f Fault
		if p.Plan != nil {
			f = p.Plan(n)
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(s, c)
			s.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.serverToClient(c, s, f)
		}()
	}
}

func (p *Proxy) serverToClient(c, s net.Conn, f Fault) {
	defer c.Close()
	defer s.Close()
	full := make([]byte, 32<<10)
	var sent int64
	for {
		buf := full
		trickle := f.Trickle > 0 && (f.TrickleFor == 0 || sent < f.TrickleFor)
		if trickle {
			buf = full[:512]
		}
		n, err := s.Read(buf)
		chunk := buf[:n]
		if f.CutAfter > 0 && sent+int64(n) >= f.CutAfter {
			c.Write(chunk[:f.CutAfter-sent])
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, as a dropped route or a killed server
			}
			return
		}
		if f.StallAfter > 0 && sent+int64(n) >= f.StallAfter {
			c.Write(chunk[:f.StallAfter-sent])
			io.Copy(io.Discard, s) // keep the server side going, forward nothing
			return
		}
		if _, werr := c.Write(chunk); werr != nil {
			return
		}
		sent += int64(n)
		if err != nil {
			return
		}
		if trickle {
			time.Sleep(f.Trickle)
		}
	}
}
