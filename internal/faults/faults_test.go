package faults

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// source is a server that sends payload to every connection once the
// client has spoken (so a fault cannot race the client's connect), then
// waits for the client to hang up.
func source(t *testing.T, payload []byte) string {
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
			go func() {
				defer c.Close()
				if _, err := c.Read(make([]byte, 1)); err != nil {
					return
				}
				c.Write(payload)
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func proxyFor(t *testing.T, target string, plan ...Fault) *Proxy {
	t.Helper()
	p, err := Listen(target)
	if err != nil {
		t.Fatal(err)
	}
	p.Plan(plan...)
	t.Cleanup(func() { p.Close() })
	return p
}

// readAll reads until EOF, error or the deadline.
func readAll(t *testing.T, addr string, deadline time.Duration) ([]byte, error, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("!"))
	c.SetReadDeadline(time.Now().Add(deadline))
	start := time.Now()
	got, err := io.ReadAll(c)
	return got, err, time.Since(start)
}

func TestProxyPassesThenFaultsInOrder(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 10_000)
	p := proxyFor(t, source(t, payload), Fault{Kind: Truncate, After: 1234})
	got, err, _ := readAll(t, p.Addr(), 5*time.Second)
	if err != nil || !bytes.Equal(got, payload[:1234]) {
		t.Fatalf("truncated connection: %d bytes, err %v; want the first 1234 bytes then EOF", len(got), err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("!"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got = make([]byte, len(payload))
	if _, err = io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("second connection (beyond the plan) got %d bytes, err %v; want everything", len(got), err)
	}
	if ev := p.Events(); len(ev) != 1 || ev[0].Conn != 1 || p.Conns() != 2 {
		t.Fatalf("events %+v, conns %d", ev, p.Conns())
	}
}

func TestProxyResetAfterMatch(t *testing.T) {
	payload := []byte("* 1 FETCH (BODY[] {100000}\r\n" + strings.Repeat("x", 100000) + ")\r\n")
	p := proxyFor(t, source(t, payload), Fault{Kind: Reset, Match: []byte("BODY[] {"), After: 5000})
	got, err, _ := readAll(t, p.Addr(), 5*time.Second)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("want connection reset, got err %v after %d bytes", err, len(got))
	}
	want := bytes.Index(payload, []byte("BODY[] {")) + len("BODY[] {") + 5000
	if len(got) > want || !bytes.Equal(got, payload[:len(got)]) {
		t.Fatalf("got %d bytes before the reset, want at most %d of the payload", len(got), want)
	}
}

func TestProxyMatchAcrossReads(t *testing.T) {
	// The marker is split over two writes of the server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("aaaaMAR"))
		time.Sleep(50 * time.Millisecond)
		c.Write([]byte("KERbbbbbbbb"))
		io.Copy(io.Discard, c)
	}()
	p := proxyFor(t, ln.Addr().String(), Fault{Kind: Truncate, Match: []byte("MARKER"), After: 3})
	got, err, _ := readAll(t, p.Addr(), 5*time.Second)
	if err != nil || string(got) != "aaaaMARKERbbb" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestProxyStallHoldsThenCloses(t *testing.T) {
	p := proxyFor(t, source(t, []byte("hello world")), Fault{Kind: Stall, After: 5, Hold: 300 * time.Millisecond})
	got, err, took := readAll(t, p.Addr(), 5*time.Second)
	if err != nil || string(got) != "hello" || took < 250*time.Millisecond {
		t.Fatalf("got %q, %v after %v; want \"hello\" then EOF after the hold", got, err, took)
	}
}

func TestProxyTrickleIsSlowButComplete(t *testing.T) {
	payload := bytes.Repeat([]byte("z"), 200)
	p := proxyFor(t, source(t, payload), Fault{Kind: Trickle, After: 100, Chunk: 10, Interval: 20 * time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("!"))
	start := time.Now()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || !bytes.Equal(got, payload) {
		t.Fatalf("trickled 100 bytes in %v (want ≥ 10 chunks × 20 ms), equal %v", took, bytes.Equal(got, payload))
	}
}

func TestProxyTrickleForThenFullSpeed(t *testing.T) {
	payload := bytes.Repeat([]byte("y"), 100+50+100_000)
	p := proxyFor(t, source(t, payload), Fault{Kind: Trickle, After: 100, Chunk: 10, Interval: 100 * time.Millisecond, For: 50})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("!"))
	start := time.Now()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	// 50 bytes in 10-byte chunks take ≥ 4 pauses; trickling all 100,050
	// bytes would take ~1,000 s.
	if took := time.Since(start); took < 400*time.Millisecond || took > 10*time.Second || !bytes.Equal(got, payload) {
		t.Fatalf("took %v (want 0.4 s to 10 s), equal %v", took, bytes.Equal(got, payload))
	}
}

func TestProxyUpstreamFault(t *testing.T) {
	received := make(chan int, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, c)
		received <- int(n)
		c.Close()
	}()
	p := proxyFor(t, ln.Addr().String(), Fault{Kind: Truncate, Dir: Upstream, After: 10})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(bytes.Repeat([]byte("u"), 100))
	select {
	case n := <-received:
		if n != 10 {
			t.Fatalf("server got %d bytes, want 10", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server never saw the end of the connection")
	}
	c.Close()
}

func TestIMAPServerBasics(t *testing.T) {
	srv := &IMAPServer{User: "u", Password: "p", Folders: []*Folder{
		{Name: "INBOX", UIDValidity: 9, Messages: []Message{{UID: 4, Body: []byte("Subject: a\r\n\r\nx\r\n"), Date: time.Unix(0, 0).UTC()}}},
		{Name: "a\x00b", Wire: Literal("a\x00b")},
	}}
	srv.Hook = func(s *Session, c *Command) bool {
		if c.Name == "NOOP" {
			s.Printf("* 1 EXPUNGE")
			s.Printf("%s OK hooked", c.Tag)
			return true
		}
		return false
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	var transcript strings.Builder
	send := func(cmd, tag string) {
		c.Write([]byte(cmd + "\r\n"))
		for {
			line, err := r.ReadString('\n')
			transcript.WriteString(line)
			if err != nil || strings.HasPrefix(line, tag+" ") {
				return
			}
		}
	}
	send("a LOGIN u {1+}\r\np", "a")
	send(`b LIST "" "*"`, "b")
	send("c EXAMINE INBOX", "c")
	send("d UID FETCH 1:* (UID BODY.PEEK[])", "d")
	send("e NOOP", "e")
	send("f LOGIN u wrong", "f")
	out := transcript.String()
	for _, want := range []string{"a OK", "{3}\r\na\x00b\r\n", "[UIDVALIDITY 9]", "* 1 FETCH (UID 4 ", "BODY[] {17}\r\nSubject: a\r\n\r\nx\r\n)", "* 1 EXPUNGE\r\ne OK hooked", "f NO"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
	if cmds := srv.Commands(); len(cmds) != 6 || cmds[0] != "a LOGIN ..." {
		t.Errorf("commands %q", cmds)
	}
}

func TestInSet(t *testing.T) {
	for _, tc := range []struct {
		set  string
		n    uint32
		want bool
	}{{"1:*", 7, true}, {"3,5:7", 6, true}, {"3,5:7", 4, false}, {"7:5", 5, true}, {"*", 9, true}, {"x", 1, false}} {
		if got := inSet(tc.set, tc.n, 10); got != tc.want {
			t.Errorf("inSet(%q, %d) = %v", tc.set, tc.n, got)
		}
	}
}
