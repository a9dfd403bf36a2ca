package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/pop3server"
	"github.com/mailark/mailark/internal/testbed"
)

// The kill and memory tests run the fetch in a child process: the test
// binary itself, re-executed to run only TestPOP3Child.

const popChildEnv = "MAILARK_TEST_POP3_CHILD"

// popChildConfig is what the child is to do.
type popChildConfig struct {
	URL       string
	CAFile    string
	Archive   string
	Delete    bool
	OlderThan time.Duration
}

// TestPOP3Child is not a test of its own: it is the child process of the
// kill and memory tests, and skips unless started by them.
func TestPOP3Child(t *testing.T) {
	spec := os.Getenv(popChildEnv)
	if spec == "" {
		t.Skip("runs only as the child process of the POP3 kill and memory tests")
	}
	var cfg popChildConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(100)
	}
	os.Exit(popChildMain(cfg))
}

func popChildMain(cfg popChildConfig) int {
	ctx := context.Background()
	a, err := account.ParseURL(cfg.URL, account.ParseOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return mailerr.ExitCode(err)
	}
	a.Secret, a.CAFile = account.EnvSecret("MAILARK_PASSWORD"), cfg.CAFile
	arc, err := archive.Open(ctx, cfg.Archive, archive.Options{LockWait: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return mailerr.ExitCode(err)
	}
	res, err := POP3(ctx, a, arc, Options{Delete: cfg.Delete, DeleteOlderThan: cfg.OlderThan})
	if cerr := arc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return mailerr.ExitCode(err)
	}
	json.NewEncoder(os.Stdout).Encode(popChildOutput{Result: res, PeakRSSKB: peakRSSKB()})
	return 0
}

type popChildOutput struct {
	Result    *Result
	PeakRSSKB int64
}

// peakRSSKB is this process's peak resident set (VmHWM). getrusage's
// maxrss would not do: after fork and exec it keeps the parent's peak.
func peakRSSKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return -1
}

// popChild is one run of the child process.
type popChild struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	mu     sync.Mutex
	killed bool
}

func startPOP3Child(t *testing.T, cfg popChildConfig, password string) *popChild {
	t.Helper()
	spec, _ := json.Marshal(cfg)
	c := &popChild{cmd: exec.Command(os.Args[0], "-test.run=^TestPOP3Child$", "-test.count=1")}
	c.cmd.Env = append(os.Environ(), popChildEnv+"="+string(spec), "MAILARK_PASSWORD="+password)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// kill sends SIGKILL: no deferred function, no Close, no QUIT runs.
func (c *popChild) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.killed {
		c.killed = true
		c.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// wait returns whether the child was killed, its result when it
// finished, and its peak RSS in bytes.
func (c *popChild) wait(t *testing.T) (killed bool, res *Result, peakRSS int64) {
	t.Helper()
	err := c.cmd.Wait()
	c.mu.Lock()
	killed = c.killed
	c.mu.Unlock()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return true, nil, 0
	}
	if err != nil {
		t.Fatalf("child failed: %v\nstderr: %s", err, c.stderr.String())
	}
	var out popChildOutput
	line, _, _ := bytes.Cut(c.stdout.Bytes(), []byte("\n"))
	if err := json.Unmarshal(line, &out); err != nil || out.Result == nil {
		t.Fatalf("child output %q: %v", c.stdout.String(), err)
	}
	return killed, out.Result, out.PeakRSSKB << 10
}

// killProxy forwards TCP connections to target and trips once a byte
// limit in either direction is reached: it runs onTrip (the kill) and
// cuts the connection after exactly that many bytes.
type killProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	s2cLimit int64 // server to client; 0: none
	c2sLimit int64 // client to server; 0: none
	s2c, c2s int64
	onTrip   func()
	tripped  bool
	conns    []net.Conn
	// atQuit >= 0 trips this long after the client's QUIT has been
	// forwarded: the server commits the deletions while the client is
	// killed before it can learn so (or do anything after).
	atQuit time.Duration
}

func newKillProxy(t *testing.T, target string) *killProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &killProxy{ln: ln, target: target, atQuit: -1}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *killProxy) addr() string { return p.ln.Addr().String() }

// arm resets the counters for the next run.
func (p *killProxy) arm(s2c, c2s int64, onTrip func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s2cLimit, p.c2sLimit, p.s2c, p.c2s, p.onTrip, p.tripped, p.atQuit = s2c, c2s, 0, 0, onTrip, false, -1
}

// armQuit trips d after the client's QUIT is forwarded.
func (p *killProxy) armQuit(d time.Duration, onTrip func()) {
	p.arm(0, 0, onTrip)
	p.mu.Lock()
	p.atQuit = d
	p.mu.Unlock()
}

func (p *killProxy) serve() {
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
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c, true)
		go p.pipe(c, s, false)
	}
}

func (p *killProxy) pipe(from, to net.Conn, serverToClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			allowed := p.account(int64(n), serverToClient)
			if allowed > 0 {
				to.Write(buf[:allowed])
			}
			if !serverToClient && bytes.Contains(buf[:allowed], []byte("QUIT\r\n")) {
				p.mu.Lock()
				d := p.atQuit
				p.mu.Unlock()
				if d >= 0 {
					time.AfterFunc(d, p.trip)
				}
			}
			if allowed < int64(n) {
				p.trip()
				return
			}
		}
		if err != nil {
			to.Close()
			return
		}
	}
}

// account counts n bytes and returns how many of them may pass.
func (p *killProxy) account(n int64, serverToClient bool) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tripped {
		return 0
	}
	count, limit := &p.c2s, p.c2sLimit
	if serverToClient {
		count, limit = &p.s2c, p.s2cLimit
	}
	*count += n
	if limit > 0 && *count >= limit {
		return n - (*count - limit)
	}
	return n
}

func (p *killProxy) trip() {
	p.mu.Lock()
	if p.tripped {
		p.mu.Unlock()
		return
	}
	p.tripped = true
	onTrip := p.onTrip
	p.mu.Unlock()
	if onTrip != nil {
		onTrip() // the child dies before it can see the cut
	}
	p.cut()
}

func (p *killProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// killHarness runs --delete fetches through a killProxy, kills them at
// seeded random points, and checks after every run that nothing was lost
// and nothing doubled.
type killHarness struct {
	t        *testing.T
	format   archive.Format
	dir      string
	password string
	proxy    *killProxy
	url      string
	// server access: current messages (sha -> count, total bytes) and adding.
	serverSums func() (map[string]int, int64, int)
	addMsgs    func(n int, seed uint64) map[string]int

	originals map[string]int
	killed    int
	completed int
	lastRun   time.Duration
}

// popKillSeedEnv overrides the seed of the kill points, to explore
// beyond the fixed ones; a failure prints the seed to replay it.
const popKillSeedEnv = "MAILARK_KILL_SEED"

func (h *killHarness) run(points int, seed uint64) {
	t := h.t
	if v := os.Getenv(popKillSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", popKillSeedEnv, v, err)
		}
		seed += n
	}
	t.Logf("kill seed %d (replay: %s=<n> adds n to the built-in seed)", seed, popKillSeedEnv)
	rng := rand.New(rand.NewPCG(seed, 4))
	h.lastRun = 500 * time.Millisecond
	for i := range points {
		if i%3 == 0 {
			for k, v := range h.addMsgs(5+rng.IntN(20), seed*1000+uint64(i)) {
				h.originals[k] += v
			}
		}
		_, bytesOnServer, msgsOnServer := h.serverSums()
		child := startPOP3Child(t, popChildConfig{URL: h.url, Archive: string(h.format) + ":" + h.dir, Delete: true}, h.password)
		var where string
		switch mode := rng.IntN(10); {
		case mode < 4: // somewhere in the transfer
			limit := 1 + rng.Int64N(bytesOnServer+4000)
			h.proxy.arm(limit, 0, child.kill)
			where = fmt.Sprintf("after %d bytes from the server", limit)
		case mode < 6: // right after QUIT reached the server
			d := time.Duration(rng.Int64N(int64(5 * time.Millisecond)))
			h.proxy.armQuit(d, child.kill)
			where = fmt.Sprintf("%v after QUIT", d)
		case mode < 8: // somewhere in the commands, DELE and QUIT included
			limit := 1 + rng.Int64N(int64(80+msgsOnServer*28))
			h.proxy.arm(0, limit, child.kill)
			where = fmt.Sprintf("after %d bytes to the server", limit)
		default: // somewhere in time, disk syncs included
			d := time.Duration(rng.Int64N(int64(h.lastRun) + 1))
			h.proxy.arm(0, 0, nil)
			time.AfterFunc(d, child.kill)
			where = fmt.Sprintf("after %v", d)
		}
		start := time.Now()
		killed, _, _ := child.wait(t)
		if killed {
			h.killed++
		} else {
			h.completed++
			h.lastRun = time.Since(start)
		}
		h.check(fmt.Sprintf("run %d killed=%v %s", i, killed, where), false)
	}
	// A last run without a kill completes the job; one more changes nothing.
	h.proxy.arm(0, 0, nil)
	for range 2 {
		if killed, res, _ := startPOP3Child(t, popChildConfig{URL: h.url, Archive: string(h.format) + ":" + h.dir, Delete: true}, h.password).wait(t); killed || res == nil {
			t.Fatal("final run did not complete")
		}
	}
	h.check("final", true)
	t.Logf("%s: %d kill points (%d runs killed, %d completed before the kill), %d messages, each archived exactly once, none lost",
		h.format, points, h.killed, h.completed, countSums(h.originals))
}

// check asserts the invariants: no message twice in the archive, none
// that was never on the server, and every message in the archive or
// still on the server. With final, the archive has them all and the
// server none.
func (h *killHarness) check(when string, final bool) {
	t := h.t
	arc := popArchiveSums(t, h.format, h.dir) // opening repairs what the kill left
	srv, _, _ := h.serverSums()
	for sum, n := range arc {
		if n > h.originals[sum] {
			t.Fatalf("%s: message %s… archived %d times, the server had it %d times", when, sum[:12], n, h.originals[sum])
		}
	}
	for sum, n := range h.originals {
		if arc[sum]+srv[sum] < n {
			t.Fatalf("%s: message %s… lost: %d archived, %d on the server, of %d", when, sum[:12], arc[sum], srv[sum], n)
		}
		if final && (arc[sum] != n || srv[sum] != 0) {
			t.Fatalf("%s: message %s…: %d archived, %d on the server, want %d and 0", when, sum[:12], arc[sum], srv[sum], n)
		}
	}
}

func TestPOP3KilledDeleteRunsLoseNothing(t *testing.T) {
	for _, format := range popFormats {
		t.Run(string(format), func(t *testing.T) {
			store := pop3server.NewMemStore()
			srv := &pop3server.Server{Store: store, Users: map[string]string{"dave": pop3TestPassword}}
			addr, err := srv.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			proxy := newKillProxy(t, addr)
			h := &killHarness{
				t: t, format: format, dir: t.TempDir(), password: pop3TestPassword, proxy: proxy,
				url:       "pop3://dave@" + proxy.addr(),
				originals: map[string]int{},
				serverSums: func() (map[string]int, int64, int) {
					out, total := map[string]int{}, int64(0)
					msgs := store.Messages("dave")
					for _, m := range msgs {
						w := pop3server.Wire(m.Data)
						out[popSHA(w)]++
						total += int64(len(w))
					}
					return out, total, len(msgs)
				},
				addMsgs: func(n int, seed uint64) map[string]int {
					out := map[string]int{}
					for _, m := range popMessages(seed, n) {
						store.Add("dave", m)
						out[popSHA(pop3server.Wire(m))]++
					}
					return out
				},
			}
			h.run(popKillPoints, 1+uint64(len(format)))
		})
	}
}

func TestPOP3DovecotKilledDeleteRunsLoseNothing(t *testing.T) {
	s := testbed.Start(t)
	for _, format := range popFormats {
		t.Run(string(format), func(t *testing.T) {
			user := s.AddUser(t, "kill"+string(format))
			proxy := newKillProxy(t, s.POP3Addr())
			h := &killHarness{
				t: t, format: format, dir: t.TempDir(), password: testbed.Password, proxy: proxy,
				url:       "pop3://" + user + "@" + proxy.addr(),
				originals: map[string]int{},
				serverSums: func() (map[string]int, int64, int) {
					sums, total := dovecotMaildrop(t, s, user)
					return sums, total, countSums(sums)
				},
				addMsgs: func(n int, seed uint64) map[string]int {
					msgs := testbed.GenMessages(int64(seed), n, testbed.GenOptions{AttachmentRate: -1})
					s.Import(t, user, msgs)
					out := map[string]int{}
					for _, m := range msgs {
						out[popSHA(m.Raw)]++
					}
					return out
				},
			}
			h.run(popKillPoints, 11+uint64(len(format)))
		})
	}
}

// popBigMessage is a realistic message of about size bytes: a header and
// a base64 attachment in 76-character lines.
func popBigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("Received: from mx.example.org by pop.example.net; Mon, 3 Jun 2024 10:00:00 +0000\r\n")
	b.WriteString("From: big@example.org\r\nTo: carol@example.net\r\nSubject: a big attachment\r\n")
	b.WriteString("Message-ID: <big@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	r := rand.New(rand.NewPCG(5, 5))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	line := make([]byte, 78)
	line[76], line[77] = '\r', '\n'
	for b.Len() < size {
		for i := range 76 {
			line[i] = alphabet[r.IntN(64)]
		}
		b.Write(line)
	}
	return b.Bytes()
}

// TestPOP3LargeMessageFlatMemory fetches a 50 MB message in a child
// process and checks its peak RSS (go-pop3's own Retr would hold the
// message twice over, 138 MB).
func TestPOP3LargeMessageFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB transfer")
	}
	big := popBigMessage(50 << 20)
	store := pop3server.NewMemStore()
	store.Add("erin", big)
	srv := &pop3server.Server{Store: store, Users: map[string]string{"erin": pop3TestPassword}}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, format := range popFormats {
		dir := t.TempDir()
		start := time.Now()
		killed, res, rss := startPOP3Child(t, popChildConfig{URL: "pop3://erin@" + addr, Archive: string(format) + ":" + dir}, pop3TestPassword).wait(t)
		if killed || res.NewMessages != 1 {
			t.Fatalf("%s: child result %+v", format, res)
		}
		t.Logf("%s: 50 MB message fetched in %v, child peak RSS %.1f MB", format, time.Since(start).Round(time.Millisecond), float64(rss)/(1<<20))
		if rss > 64<<20 {
			t.Errorf("%s: peak RSS %d MB, want under 64 MB", format, rss>>20)
		}
		got := popArchiveSums(t, format, dir)
		if got[popSHA(big)] != 1 {
			t.Fatalf("%s: the big message is not archived exactly", format)
		}
	}
}

// TestPOP3ChildRSSBaseline keeps the RSS figure honest: the same child
// doing nothing shows what the test binary costs by itself.
func TestPOP3ChildRSSBaseline(t *testing.T) {
	srv := &pop3server.Server{Store: pop3server.NewMemStore(), Users: map[string]string{"erin": pop3TestPassword}}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, _, rss := startPOP3Child(t, popChildConfig{URL: "pop3://erin@" + addr, Archive: "maildir:" + t.TempDir()}, pop3TestPassword).wait(t)
	t.Logf("child with an empty maildrop: peak RSS %.1f MB", float64(rss)/(1<<20))
}

func TestPOP3DovecotLargeMessageFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB transfer")
	}
	s := testbed.Start(t)
	user := s.AddUser(t, "big")
	big := popBigMessage(50 << 20)
	s.Save(t, user, "INBOX", big, nil, time.Time{})
	dir := t.TempDir()
	a := dovecotAccount(t, s, "pop3s", user)
	killed, res, rss := startPOP3Child(t, popChildConfig{URL: s.URL("pop3s", user), CAFile: a.CAFile, Archive: "mbox:" + dir}, testbed.Password).wait(t)
	if killed || res.NewMessages != 1 {
		t.Fatalf("child result %+v", res)
	}
	t.Logf("50 MB message from Dovecot over pop3s in %v, child peak RSS %.1f MB", res.Duration.Round(time.Millisecond), float64(rss)/(1<<20))
	if rss > 64<<20 {
		t.Errorf("peak RSS %d MB, want under 64 MB", rss>>20)
	}
	if got := popArchiveSums(t, archive.Mbox, dir); got[popSHA(big)] != 1 {
		t.Fatal("the big message is not archived exactly")
	}
}
