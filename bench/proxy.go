package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// latencyProxy forwards loopback TCP connections to target, delaying every
// byte by delay in each direction (so the round trip grows by 2×delay)
// without limiting throughput: a reader timestamps each chunk as it arrives
// and a writer releases it when its time has come, so many chunks are in
// flight at once, as on a long fat pipe.
type latencyProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup
}

func startLatencyProxy(target string, delay time.Duration) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &latencyProxy{ln: ln, target: target, delay: delay}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Port is the proxy's listening port on 127.0.0.1.
func (p *latencyProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *latencyProxy) Close() error {
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *latencyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c.(*net.TCPConn))
	}
}

func (p *latencyProxy) handle(client *net.TCPConn) {
	defer client.Close()
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer upstream.Close()
	done := make(chan struct{}, 2)
	go func() { delayedCopy(upstream.(*net.TCPConn), client, p.delay); done <- struct{}{} }()
	go func() { delayedCopy(client, upstream.(*net.TCPConn), p.delay); done <- struct{}{} }()
	<-done
	<-done
}

type delayedChunk struct {
	due time.Time
	buf []byte
}

// chunkPool recycles the 64 KiB read buffers of all proxied streams.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// delayedCopy copies src to dst, each chunk released delay after it was
// read. The channel bounds the bytes in flight (and so the proxy's memory)
// at 1,024 chunks, far above what 10 ms of loopback traffic needs.
func delayedCopy(dst, src *net.TCPConn, delay time.Duration) {
	chunks := make(chan delayedChunk, 1024)
	go func() {
		defer close(chunks)
		for {
			bp := chunkPool.Get().(*[]byte)
			n, err := src.Read(*bp)
			if n > 0 {
				chunks <- delayedChunk{due: time.Now().Add(delay), buf: (*bp)[:n]}
			} else {
				chunkPool.Put(bp)
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for c := range chunks {
		if !failed {
			if wait := time.Until(c.due); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := dst.Write(c.buf); err != nil {
				failed = true
				src.Close() // unblock the reader; drain what is queued
			}
		}
		buf := c.buf[:cap(c.buf)]
		chunkPool.Put(&buf)
	}
	dst.CloseWrite()
}

// measureIMAPRoundTrip logs in at addr and times n sequential NOOPs,
// returning the median: the round trip a client sees through any proxy.
func measureIMAPRoundTrip(addr, user, pass string, n int) (time.Duration, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	c := &imapReader{r: bufio.NewReader(conn)}
	if _, err := c.line(); err != nil {
		return 0, err
	}
	fmt.Fprintf(conn, "a LOGIN %s %s\r\n", imapQuote(user), imapQuote(pass))
	if _, err := c.untilTagged("a", nil); err != nil {
		return 0, err
	}
	times := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		tag := fmt.Sprintf("n%d", i)
		if _, err := fmt.Fprintf(conn, "%s NOOP\r\n", tag); err != nil {
			return 0, err
		}
		if _, err := c.untilTagged(tag, nil); err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
	}
	fmt.Fprintf(conn, "z LOGOUT\r\n")
	return medianDuration(times), nil
}

// measureProxyThroughput pushes size bytes through a delaying proxy to a
// local sink and returns bytes/second, to show the delay does not throttle.
func measureProxyThroughput(delay time.Duration, size int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c)
	}()
	p, err := startLatencyProxy(ln.Addr().String(), delay)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port()))
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := conn.Write(buf); err != nil {
			return 0, err
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	// The sink side sees EOF after the last chunk leaves the proxy; wait
	// for our read side to close, which happens when the proxy finishes.
	if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, net.ErrClosed) {
		return 0, err
	}
	conn.Close()
	return float64(size) / time.Since(start).Seconds(), nil
}

func medianDuration(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
