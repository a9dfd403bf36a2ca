// Package faults breaks connections on purpose, for tests that prove mailark
// survives real networks and hostile servers: a TCP proxy that resets,
// stalls, trickles or truncates a connection at a chosen byte, and a
// scriptable IMAP server that answers with whatever a test scripts.
//
// Both listen on loopback only and stop when closed; nothing here is used
// by the mailark binary itself.
package faults

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"time"
)

// Kind is what a Fault does to a connection once its trigger point is
// reached.
type Kind int

const (
	// Pass forwards everything unchanged.
	Pass Kind = iota
	// Reset aborts both sides with a TCP RST (SO_LINGER 0), as a NAT
	// box or a crashed server does.
	Reset
	// Stall stops forwarding in the faulted direction: the connection
	// stays open but silent, as a hung server or a black-holed route.
	Stall
	// Trickle forwards Chunk bytes every Interval from then on: a slow
	// but live link.
	Trickle
	// Truncate forwards up to the trigger point, then closes both sides
	// cleanly (FIN): a response cut short.
	Truncate
)

func (k Kind) String() string {
	switch k {
	case Pass:
		return "pass"
	case Reset:
		return "reset"
	case Stall:
		return "stall"
	case Trickle:
		return "trickle"
	case Truncate:
		return "truncate"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Direction says which way of a connection a Fault watches and breaks.
type Direction int

const (
	// Downstream is server → client.
	Downstream Direction = iota
	// Upstream is client → server.
	Upstream
)

func (d Direction) String() string {
	if d == Upstream {
		return "upstream"
	}
	return "downstream"
}

// Fault is what happens to one proxied connection.
type Fault struct {
	Kind Kind
	Dir  Direction
	// After is the number of bytes forwarded in Dir before the fault
	// fires, counted from the end of the first Match (or from the start
	// of the connection when Match is empty).
	After int64
	// Match, when set, arms the fault only once this byte string has
	// passed in Dir; e.g. "BODY[] {" puts After bytes into a literal.
	Match []byte
	// Hold bounds a Stall: after Hold the connection is closed (0: stall
	// until the client gives up or the proxy closes).
	Hold time.Duration
	// Chunk and Interval shape a Trickle (defaults 16 bytes / 50 ms).
	Chunk    int
	Interval time.Duration
	// For bounds a Trickle: after this many bytes trickled the link is
	// fast again, so a slow stretch need not slow a whole run (0: trickle
	// to the end).
	For int64
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s %s after %d bytes", f.Kind, f.Dir, f.After)
	if len(f.Match) > 0 {
		s += fmt.Sprintf(" past %q", f.Match)
	}
	return s
}

// Event records a fault that fired on a connection.
type Event struct {
	Conn  int // 1-based connection number
	Fault Fault
	At    time.Time
}

// Proxy forwards loopback connections to a target address and applies a
// planned Fault to each new connection in turn; connections beyond the
// plan pass unchanged.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	plan   []Fault
	conns  int
	events []Event
	open   map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// Listen starts a proxy on a free loopback port in front of target
// ("host:port").
func Listen(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, open: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Plan sets the faults for the next connections, one each, in order.
func (p *Proxy) Plan(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan = append([]Fault(nil), faults...)
}

// Conns is the number of connections accepted so far.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

// Events lists the faults that fired.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Close stops accepting, cuts every open connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns++
		n := p.conns
		f := Fault{}
		if len(p.plan) > 0 {
			f, p.plan = p.plan[0], p.plan[1:]
		}
		p.open[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			p.serve(n, c, f)
		}()
	}
}

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		if p.closed {
			return false
		}
		p.open[c] = true
	} else {
		delete(p.open, c)
	}
	return true
}

func (p *Proxy) fired(n int, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, Event{Conn: n, Fault: f, At: time.Now()})
}

// serve runs one connection: two pumps, the faulted one shaped by f.
func (p *Proxy) serve(n int, client net.Conn, f Fault) {
	defer func() {
		client.Close()
		p.track(client, false)
	}()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(server, true) {
		server.Close()
		return
	}
	defer func() {
		server.Close()
		p.track(server, false)
	}()
	link := &link{client: client, server: server, done: make(chan struct{})}
	down := &pump{src: server, dst: client}
	up := &pump{src: client, dst: server}
	faulted := down
	if f.Dir == Upstream {
		faulted = up
	}
	if f.Kind != Pass {
		faulted.fault = &f
		faulted.onFire = func() { p.fired(n, f) }
	}
	var wg sync.WaitGroup
	wg.Add(2)
	for _, pm := range []*pump{down, up} {
		go func() {
			defer wg.Done()
			pm.run(link)
			// Either side ending ends the connection, as a proxy in
			// the network would after a half-close timeout.
			link.shut(false)
		}()
	}
	wg.Wait()
}

// link is the pair of sockets of one proxied connection.
type link struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

// shut closes both sockets; abort sends RST instead of FIN.
func (l *link) shut(abort bool) {
	l.once.Do(func() {
		if abort {
			for _, c := range []net.Conn{l.client, l.server} {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) //nolint:errcheck // best effort: a plain close is the fallback
				}
			}
		}
		l.client.Close()
		l.server.Close()
		close(l.done)
	})
}

// pump copies one direction, applying a fault when it has one.
type pump struct {
	src, dst net.Conn
	fault    *Fault
	onFire   func()

	armed    bool   // Match seen (or not needed)
	tail     []byte // last bytes, to find Match across reads
	counted  int64  // bytes forwarded since armed
	trickled int64  // bytes forwarded by a Trickle
}

func (pm *pump) run(l *link) {
	buf := make([]byte, 32*1024)
	for {
		n, err := pm.src.Read(buf)
		if n > 0 {
			if !pm.forward(l, buf[:n]) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// forward writes b, firing the fault inside it when its point is reached.
// It reports false when the connection is finished.
func (pm *pump) forward(l *link, b []byte) bool {
	f := pm.fault
	if f == nil {
		return pm.write(b)
	}
	if f.Kind == Trickle && pm.triggered() {
		return pm.trickle(l, b)
	}
	if !pm.armed {
		i := pm.matchEnd(b)
		if i < 0 {
			return pm.write(b)
		}
		pm.armed = true
		if !pm.write(b[:i]) {
			return false
		}
		b = b[i:]
	}
	room := f.After - pm.counted
	if int64(len(b)) < room {
		pm.counted += int64(len(b))
		return pm.write(b)
	}
	if !pm.write(b[:room]) {
		return false
	}
	pm.counted += room
	pm.onFire()
	return pm.fire(l, b[room:])
}

func (pm *pump) triggered() bool { return pm.armed && pm.counted >= pm.fault.After }

// matchEnd returns the index in b just past the first Match, or -1.
func (pm *pump) matchEnd(b []byte) int {
	m := pm.fault.Match
	if len(m) == 0 {
		return 0
	}
	joined := append(pm.tail, b...)
	if i := bytes.Index(joined, m); i >= 0 {
		end := i + len(m) - len(pm.tail)
		if end < 0 {
			end = 0
		}
		return end
	}
	keep := len(m) - 1
	if len(joined) > keep {
		joined = joined[len(joined)-keep:]
	}
	pm.tail = append(pm.tail[:0], joined...)
	return -1
}

// fire applies the fault; rest is what the source sent past the point.
func (pm *pump) fire(l *link, rest []byte) bool {
	f := pm.fault
	switch f.Kind {
	case Reset:
		l.shut(true)
		return false
	case Truncate:
		l.shut(false)
		return false
	case Stall:
		var hold <-chan time.Time
		if f.Hold > 0 {
			t := time.NewTimer(f.Hold)
			defer t.Stop()
			hold = t.C
		}
		select {
		case <-hold:
		case <-l.done:
		}
		l.shut(false)
		return false
	case Trickle:
		return pm.trickle(l, rest)
	}
	return pm.write(rest)
}

func (pm *pump) trickle(l *link, b []byte) bool {
	chunk, every := pm.fault.Chunk, pm.fault.Interval
	if chunk <= 0 {
		chunk = 16
	}
	if every <= 0 {
		every = 50 * time.Millisecond
	}
	for len(b) > 0 {
		if pm.fault.For > 0 && pm.trickled >= pm.fault.For {
			return pm.write(b)
		}
		n := min(chunk, len(b))
		if pm.fault.For > 0 {
			n = int(min(int64(n), pm.fault.For-pm.trickled))
		}
		if !pm.write(b[:n]) {
			return false
		}
		pm.trickled += int64(n)
		b = b[n:]
		select {
		case <-time.After(every):
		case <-l.done:
			return false
		}
	}
	return true
}

func (pm *pump) write(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	_, err := pm.dst.Write(b)
	return err == nil
}
