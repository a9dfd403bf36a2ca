// Package testbed runs a private Dovecot 2.3 (IMAP, IMAPS, POP3, POP3S) on
// free loopback ports for integration tests, and offers helpers that seed and
// inspect its mailboxes through doveadm.
//
// Every server gets its own directory holding a complete dovecot.conf, the
// users' passwd-files, a freshly generated CA and server certificate, the
// maildirs, the runtime sockets and the log. Nothing of the system Dovecot
// configuration is used, and the system Dovecot service is never started or
// touched. Several servers can run in one test binary, and test binaries can
// run in parallel.
//
// Dovecot refuses to access mail as root, so mail is owned by an unprivileged
// system user (VmailUser) that Start creates when it is missing. Start also
// installs the Debian packages dovecot-imapd and dovecot-pop3d when Dovecot
// is missing and the test runs as root; otherwise the test is skipped (or
// fails when the environment variable CI is "true").
//
// Typical use:
//
//	s := testbed.Start(t)
//	user := s.AddUser(t, "alice")
//	seed := testbed.GenMessages(1, 500, testbed.GenOptions{Folders: []string{"INBOX", "Sent", "Work/2024"}})
//	s.Import(t, user, seed)
//	// ... run the code under test against s.URL("imaps", user), password
//	// testbed.Password, CA file s.CAFile ...
//	got := s.Fetch(t, user, "INBOX") // bytes exactly as IMAP serves them
//
// Fetch, Status and Folders read through doveadm rather than IMAP, so they
// neither set \Seen nor depend on the IMAP code being tested.
package testbed

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Password is the password of every user the test bed creates with AddUser.
const Password = "secret-Pa55"

// VmailUser is the unprivileged system account that owns all mail of all
// test servers. Dovecot switches to it for every mail access.
const VmailUser = "mailarkvmail"

// KeepEnv names an environment variable: when it is "1", the server
// directory (config, log, maildirs) is kept after the test for inspection.
const KeepEnv = "MAILARK_TESTBED_KEEP"

// Options changes how a server is configured. The zero value gives the
// default server.
type Options struct {
	// SentName is the name of the folder that carries the \Sent special-use
	// attribute. Default "Sent". Use e.g. "Sent Items" to model
	// Exchange-style servers.
	SentName string
	// NoAutoCreate declares the special-use folders (Sent, Drafts, Trash,
	// Junk, Archive) without auto-creating them, so a fresh account has
	// only INBOX until someone creates them.
	NoAutoCreate bool
	// ExtraConfig is appended verbatim to dovecot.conf. Later settings
	// override earlier ones, so it can change any default of the test bed.
	ExtraConfig string
}

// Server is one running private Dovecot instance.
type Server struct {
	Dir  string // private directory holding config, certificates, mail and logs
	Host string // "127.0.0.1"

	IMAPPort, IMAPSPort, POP3Port, POP3SPort int

	CAFile  string // PEM of the CA that signed the server certificate
	Config  string // path of dovecot.conf (for doveadm -c)
	LogFile string // Dovecot's log
	MailDir string // parent of the users' maildirs: MailDir/<user>

	// SentName is the folder carrying \Sent (see Options.SentName).
	SentName string

	opts      Options
	bins      binaries
	vmail     vmailIDs
	instance  string
	passwdDir string
	caPool    *x509.CertPool

	mu    sync.Mutex // guards users
	users map[string]bool

	proc *os.Process
	done chan struct{} // closed when the Dovecot master has exited
	werr error         // exit status, valid after done is closed
}

// Start starts a default server for the test and registers its shutdown with
// t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a server configured by opts for the test and registers its
// shutdown with t.Cleanup.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.SentName == "" {
		opts.SentName = "Sent"
	}
	if strings.ContainsAny(opts.SentName, "\"{}\\\r\n.*%") {
		t.Fatalf("testbed: SentName %q: characters not allowed in a Maildir++ folder name or in dovecot.conf", opts.SentName)
	}
	bins := requireDovecot(t)
	vmail, err := ensureVmailUser()
	if err != nil {
		unavailable(t, err.Error())
	}

	root, err := newServerDir()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	s := &Server{
		Dir:       root,
		Host:      "127.0.0.1",
		CAFile:    filepath.Join(root, "ca.pem"),
		Config:    filepath.Join(root, "dovecot.conf"),
		LogFile:   filepath.Join(root, "dovecot.log"),
		MailDir:   filepath.Join(root, "mail"),
		SentName:  opts.SentName,
		opts:      opts,
		bins:      bins,
		vmail:     vmail,
		instance:  "mailark-testbed-" + filepath.Base(root),
		passwdDir: filepath.Join(root, "passwd.d"),
		users:     map[string]bool{},
	}
	keep := os.Getenv(KeepEnv) == "1"
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			s.logTail(t, 40)
		}
		if keep {
			t.Logf("testbed: kept %s", s.Dir)
			return
		}
		if err := os.RemoveAll(s.Dir); err != nil {
			t.Logf("testbed: removing %s: %v", s.Dir, err)
		}
	})
	if err := s.prepare(); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if err := s.launch(); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return s
}

// prepare writes everything the instance needs except dovecot.conf, which
// depends on the ports chosen at launch.
func (s *Server) prepare() error {
	for _, d := range []string{"run", "state"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	// Mail and home directories belong to the mail user: Dovecot creates
	// each user's maildir on first access, as that user.
	for _, d := range []string{"mail", "home"} {
		p := filepath.Join(s.Dir, d)
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := os.Chown(p, s.vmail.uid, s.vmail.gid); err != nil {
			return err
		}
	}
	pool, err := writeCertificates(s.Dir)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	s.caPool = pool
	// The auth process reads the passwd-files as Dovecot's internal user;
	// the only secret in them is the test password.
	return os.Mkdir(s.passwdDir, 0o755)
}

// launch picks free ports, writes the config and starts Dovecot, retrying
// with other ports when another process took one of them in the meantime.
func (s *Server) launch() error {
	const attempts = 8
	var lastErr error
	for i := 0; i < attempts; i++ {
		ports, err := freePorts(4)
		if err != nil {
			return err
		}
		s.IMAPPort, s.IMAPSPort, s.POP3Port, s.POP3SPort = ports[0], ports[1], ports[2], ports[3]
		if err := os.WriteFile(s.Config, []byte(s.config()), 0o644); err != nil {
			return err
		}
		err = s.run()
		if err == nil {
			return nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return fmt.Errorf("no free ports after %d attempts: %w", attempts, lastErr)
}

var errPortTaken = errors.New("port already in use")

// run starts the Dovecot master in the foreground as a child of the test
// process and waits until both login services greet.
func (s *Server) run() error {
	logStart := fileSize(s.LogFile)
	var stderr bytes.Buffer
	// -F keeps the master in the foreground: it stays our child, so its pid
	// is known without races and Wait reports its end. Pdeathsig asks the
	// kernel to stop it if the test binary dies without running cleanups
	// (panic, test timeout, kill).
	cmd := exec.Command(s.bins.dovecot, "-F", "-c", s.Config)
	cmd.Dir = s.Dir
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := startFromLockedThread(cmd); err != nil {
		return fmt.Errorf("starting %s: %w", s.bins.dovecot, err)
	}
	s.proc = cmd.Process
	s.done = make(chan struct{})
	go func() {
		s.werr = cmd.Wait()
		close(s.done)
	}()

	deadline := time.Now().Add(15 * time.Second)
	for _, c := range []struct {
		port     int
		greeting string
	}{{s.IMAPPort, "* OK"}, {s.POP3Port, "+OK"}} {
		for {
			err := greets(s.Host, c.port, c.greeting)
			if err == nil {
				break
			}
			select {
			case <-s.done:
				msg := strings.TrimSpace(stderr.String() + "\n" + readFrom(s.LogFile, logStart))
				if strings.Contains(msg, "Address already in use") {
					return fmt.Errorf("%w: %s", errPortTaken, lastLine(msg))
				}
				return fmt.Errorf("dovecot exited during start-up (%v): %s", s.werr, msg)
			default:
			}
			if time.Now().After(deadline) {
				s.kill()
				return fmt.Errorf("dovecot did not greet on port %d within 15 s: %v; log: %s",
					c.port, err, readFrom(s.LogFile, logStart))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// The kernel sends the parent-death signal when the *thread* that forked the
// child ends, not the process, and the Go runtime may end threads (after a
// goroutine exits while locked to its thread). All servers are therefore
// forked from one goroutine that is locked to its thread and never exits.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startFromLockedThread(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range spawnReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error)
	spawnReqs <- spawnReq{cmd, done}
	return <-done
}

// greets connects to host:port and checks that the first line starts with
// want.
func greets(host string, port int, want string) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	return nil
}

// stop ends the instance this server started, and only that one. SIGTERM
// makes the master stop its services and disconnect all clients. The
// master then asks its log process to quit and sleeps a fixed second before
// it exits; to save that second per server, once the log process is the
// only child left (nothing can touch the mail any more), the log process and
// the master are killed. The log process cannot have been reaped, and its
// pid reused, while the master sleeps, so the pid still names our process.
func (s *Server) stop(t testing.TB) {
	if s.proc == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	master := s.proc.Pid
	if pid, err := readPidFile(filepath.Join(s.Dir, "run", "master.pid")); err == nil && pid != master {
		t.Logf("testbed: master.pid says %d, but the master started here is %d; stopping %d", pid, master, master)
	}
	_ = s.proc.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
		kids, err := children(master)
		if err != nil {
			continue // fall back to waiting for the master's own exit
		}
		onlyLog := true
		for _, k := range kids {
			onlyLog = onlyLog && k.comm == "log"
		}
		if !onlyLog {
			continue
		}
		for _, k := range kids {
			_ = syscall.Kill(k.pid, syscall.SIGKILL)
		}
		s.kill()
		return
	}
	t.Logf("testbed: dovecot (pid %d) did not stop within 10 s of SIGTERM; killing it", master)
	s.kill()
}

type proc struct {
	pid  int
	comm string
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []proc
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid ..."; comm may contain spaces and ')'.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		kids = append(kids, proc{pid: n, comm: string(b[open+1 : end])})
	}
	return kids, nil
}

func (s *Server) kill() {
	_ = s.proc.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

// Running reports whether the Dovecot master is still alive.
func (s *Server) Running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// IMAPAddr, IMAPSAddr, POP3Addr and POP3SAddr return "host:port" of the
// listeners.
func (s *Server) IMAPAddr() string  { return s.addr(s.IMAPPort) }
func (s *Server) IMAPSAddr() string { return s.addr(s.IMAPSPort) }
func (s *Server) POP3Addr() string  { return s.addr(s.POP3Port) }
func (s *Server) POP3SAddr() string { return s.addr(s.POP3SPort) }

func (s *Server) addr(port int) string { return net.JoinHostPort(s.Host, strconv.Itoa(port)) }

// URL returns scheme://user@host:port for one of the schemes imap, imaps,
// pop3 and pop3s.
func (s *Server) URL(scheme, user string) string {
	var port int
	switch scheme {
	case "imap":
		port = s.IMAPPort
	case "imaps":
		port = s.IMAPSPort
	case "pop3":
		port = s.POP3Port
	case "pop3s":
		port = s.POP3SPort
	default:
		panic("testbed: unknown scheme " + scheme)
	}
	return scheme + "://" + user + "@" + s.addr(port)
}

// TLSConfig returns a client configuration that trusts only this server's
// CA and verifies the server as 127.0.0.1.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.caPool, ServerName: s.Host, MinVersion: tls.VersionTLS12}
}

// Log returns Dovecot's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogFile)
	return string(b)
}

func (s *Server) logTail(t testing.TB, n int) {
	lines := strings.Split(strings.TrimRight(s.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("testbed: last lines of %s:\n%s", s.LogFile, strings.Join(lines, "\n"))
}

// freePorts asks the kernel for n distinct free loopback ports. They are
// released before Dovecot binds them, so another process can win the race;
// launch retries in that case.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// newServerDir creates the server's private directory. Unix socket paths
// are limited to 107 bytes, and the mail user must be able to traverse every
// parent, so a short, world-traversable temporary directory is chosen rather
// than the test's own (possibly long or private) temp dir.
func newServerDir() (string, error) {
	var reasons []string
	for _, base := range []string{os.TempDir(), "/tmp", "/var/tmp"} {
		if err := usableBase(base); err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		dir, err := os.MkdirTemp(base, "dovecot-")
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		return dir, nil
	}
	return "", fmt.Errorf("no usable temporary directory: %s", strings.Join(reasons, "; "))
}

func usableBase(base string) error {
	abs, err := filepath.Abs(base)
	if err != nil {
		return err
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	// Leave room for "/dovecot-NNNNNNNNNN/run/login/imap-urlauth" within
	// the socket path limit.
	if len(abs) > 48 {
		return fmt.Errorf("%s: path too long for unix sockets", abs)
	}
	if strings.ContainsAny(abs, " \t\"'<>#\\") {
		return fmt.Errorf("%s: characters dovecot.conf cannot quote", abs)
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not traversable by other users", p)
		}
		if p == "/" {
			return nil
		}
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
