package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/pop3server"
	"github.com/mailark/mailark/internal/testbed"
)

// These tests run the mailark binary as cron would: a subprocess with no
// terminal, against the private Dovecot of the test bed.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// mailarkBinary builds cmd/mailark once per test binary.
func mailarkBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "mailark-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "mailark")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/mailark/mailark/cmd/mailark").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is one finished mailark process.
type proc struct {
	stdout, stderr string
	code           int
}

// cmdEnv is a clean environment: no terminal, a private HOME and config
// directory, and only the variables given.
func cmdEnv(t *testing.T, vars ...string) []string {
	home := t.TempDir()
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}, vars...)
}

func runBinary(t *testing.T, env []string, args ...string) proc {
	t.Helper()
	cmd := exec.Command(mailarkBinary(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	p := proc{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		p.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run mailark: %v", err)
	}
	return p
}

// archiveHashes reads every folder of an archive: folder → sorted SHA-256s.
func archiveHashes(t *testing.T, spec string) map[string][]string {
	t.Helper()
	a, err := archive.Open(context.Background(), spec, archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	defer a.Close()
	folders, err := a.Folders()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		msgs, err := a.Messages(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			rc, err := a.Open(f.Name, m.Key)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, rc)
			rc.Close()
			out[f.Name] = append(out[f.Name], hex.EncodeToString(h.Sum(nil)))
		}
		slices.Sort(out[f.Name])
	}
	return out
}

// serverHashes is the same for a Dovecot account, read through doveadm.
func serverHashes(t *testing.T, s *testbed.Server, user string, folders ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, f := range folders {
		for _, m := range s.Fetch(t, user, f) {
			sum := sha256.Sum256(m.Raw)
			out[f] = append(out[f], hex.EncodeToString(sum[:]))
		}
		slices.Sort(out[f])
	}
	return out
}

func sameHashes(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	for f, w := range want {
		if !slices.Equal(got[f], w) {
			t.Errorf("%s: folder %q has %d messages, want %d (byte-exact, each once)", what, f, len(got[f]), len(w))
		}
	}
}

// snapshot hashes every file under root, for "left byte-identical". The
// lock file is left out: a run that opens the archive records itself as
// the holder there, which is bookkeeping, not archive data.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == filepath.Join(".mailark", "lock") {
			return nil
		}
		info, _ := d.Info()
		if d.IsDir() {
			out[rel] = "dir " + info.Mode().String()
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[rel] = info.Mode().String() + " " + hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed (%q → %q)", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared", what, k)
		}
	}
}

// seededBed starts Dovecot with an IMAP account (several folders) and a
// POP3 account.
func seededBed(t *testing.T) (s *testbed.Server, imapUser, popUser string, imapFolders []string) {
	s = testbed.Start(t)
	imapUser, popUser = s.AddUser(t, "alice"), s.AddUser(t, "bob")
	imapFolders = []string{"INBOX", "Sent", "Work/2024", "Entwürfe"}
	s.Import(t, imapUser, testbed.GenMessages(11, 120, testbed.GenOptions{Folders: imapFolders}))
	s.Import(t, popUser, testbed.GenMessages(12, 40, testbed.GenOptions{}))
	return s, imapUser, popUser, imapFolders
}

func TestE2ERunTwoJobsQuietly(t *testing.T) {
	s, imapUser, popUser, imapFolders := seededBed(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[[job]]
name = "imap"
source = %q
archive = "maildir:imap-archive"
ca_file = %q
password_env = "TB_PASSWORD"

[[job]]
name = "pop"
source = %q
archive = "mbox:pop-archive"
ca_file = %q
password_env = "TB_PASSWORD"
`, s.URL("imaps", imapUser), s.CAFile, s.URL("pop3s", popUser), s.CAFile)), 0o600)
	env := cmdEnv(t, "TB_PASSWORD="+testbed.Password)

	p := runBinary(t, env, "run", "--config", cfg)
	if p.code != 0 || p.stdout != "" || p.stderr != "" {
		t.Fatalf("cron run: exit %d, stdout %q, stderr %q; want 0 and silence", p.code, p.stdout, p.stderr)
	}
	sameHashes(t, "imap archive", archiveHashes(t, "maildir:"+filepath.Join(dir, "imap-archive")),
		serverHashes(t, s, imapUser, imapFolders...))
	sameHashes(t, "pop archive", archiveHashes(t, "mbox:"+filepath.Join(dir, "pop-archive")),
		serverHashes(t, s, popUser, "INBOX"))

	// A second run finds nothing new and is just as quiet; --json tells.
	p = runBinary(t, env, "run", "--json", "--config", cfg)
	if p.code != 0 || p.stderr != "" || !strings.Contains(p.stdout, `"type":"summary","jobs":2,"ok":2`) ||
		!strings.Contains(p.stdout, `"messages":0`) {
		t.Errorf("second run: exit %d, stdout %q, stderr %q", p.code, p.stdout, p.stderr)
	}
}

// stallingPOP3 is a POP3 server that stops answering in the middle of the
// first RETR: the run using it holds its archive's lock until its timeout.
func stallingPOP3(t *testing.T) string {
	store := pop3server.NewMemStore()
	for _, m := range testbed.GenMessages(13, 5, testbed.GenOptions{}) {
		store.Add("carol", m.Raw)
	}
	srv := &pop3server.Server{Store: store, Users: map[string]string{"carol": "pw"}, Hooks: pop3server.Hooks{StallAfter: 400}}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "pop3://carol@" + addr
}

func TestE2ESecondRunOnSameArchiveIsLocked(t *testing.T) {
	s, _, popUser, _ := seededBed(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
retries = 0

[[job]]
name = "stuck"
source = %q
archive = "mbox:shared"
password_env = "STUCK_PASSWORD"
timeout = "4s"

[[job]]
name = "pop"
source = %q
archive = "mbox:shared"
ca_file = %q
password_env = "TB_PASSWORD"
`, stallingPOP3(t), s.URL("pop3s", popUser), s.CAFile)), 0o600)
	env := cmdEnv(t, "TB_PASSWORD="+testbed.Password, "STUCK_PASSWORD=pw")

	first := exec.Command(mailarkBinary(t), "run", "--config", cfg, "stuck")
	first.Env = env
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(dir, "shared", ".mailark", "lock")
	waitFor(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(lockFile)
		return strings.Contains(string(b), `"pid":`+strconv.Itoa(first.Process.Pid))
	})

	p := runBinary(t, env, "run", "--config", cfg, "pop")
	if p.code != mailerr.ExitLocked {
		t.Errorf("second run: exit %d, want %d (locked); stderr %q", p.code, mailerr.ExitLocked, p.stderr)
	}
	if want := fmt.Sprintf("locked by pid %d on ", first.Process.Pid); strings.Count(p.stderr, "\n") != 1 || !strings.Contains(p.stderr, want) {
		t.Errorf("second run: stderr %q, want one line naming the holder (%s)", p.stderr, want)
	}

	// With --lock-wait it waits for the first run to give up, then works.
	p = runBinary(t, env, "run", "--lock-wait", "60s", "--config", cfg, "pop")
	if p.code != 0 {
		t.Errorf("waiting run: exit %d, stderr %q", p.code, p.stderr)
	}
	first.Wait()
	if code := first.ProcessState.ExitCode(); code != mailerr.ExitNetwork {
		t.Errorf("stalled run: exit %d, want %d (network timeout); stderr %q", code, mailerr.ExitNetwork, firstErr.String())
	}
	sameHashes(t, "pop archive", archiveHashes(t, "mbox:"+filepath.Join(dir, "shared")), serverHashes(t, s, popUser, "INBOX"))
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort is a loopback port nothing listens on.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestE2EBadInputs(t *testing.T) {
	s, imapUser, _, _ := seededBed(t)
	dir := t.TempDir()
	good := "maildir:" + filepath.Join(dir, "good")
	env := cmdEnv(t, "MAILARK_PASSWORD="+testbed.Password)
	imaps := s.URL("imaps", imapUser)
	if p := runBinary(t, env, "fetch", "--ca-file", s.CAFile, imaps, good); p.code != 0 {
		t.Fatalf("seeding fetch: exit %d %q", p.code, p.stderr)
	}
	// A second archive whose folder state is corrupt.
	corrupt := filepath.Join(dir, "corrupt")
	if p := runBinary(t, env, "fetch", "--ca-file", s.CAFile, imaps, "maildir:"+corrupt); p.code != 0 {
		t.Fatalf("seeding fetch: exit %d %q", p.code, p.stderr)
	}
	var states []string
	filepath.WalkDir(filepath.Join(corrupt, ".mailark"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "state.json" {
			states = append(states, p)
		}
		return nil
	})
	if len(states) == 0 {
		t.Fatal("no state.json in the archive")
	}
	os.WriteFile(states[0], []byte(`{"uidvalidity": "not a number`), 0o600)

	notDir := filepath.Join(dir, "a-file")
	os.WriteFile(notDir, []byte("x"), 0o600)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	badTOML := write("bad.toml", "[[job]\nsource = 1\n")
	unknownKey := write("unknown.toml", fmt.Sprintf("[[job]]\nsource = %q\narchive = %q\nfolders = [\"INBOX\"]\n", imaps, good))
	badURL := write("badurl.toml", fmt.Sprintf("[[job]]\nsource = \"imaps:/alice\"\narchive = %q\n", good))
	closed := fmt.Sprintf("imap://%s@127.0.0.1:%d", imapUser, freePort(t))

	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"missing config", env, []string{"run", "--config", filepath.Join(dir, "none.toml")}, mailerr.ExitUsage, "none.toml does not exist"},
		{"bad TOML", env, []string{"run", "--config", badTOML}, mailerr.ExitUsage, "bad.toml:1:"},
		{"unknown key", env, []string{"run", "--config", unknownKey}, mailerr.ExitUsage, `unknown.toml:4:1: unknown key "job.folders"`},
		{"bad URL in config", env, []string{"run", "--config", badURL}, mailerr.ExitUsage, "badurl.toml:2: bad server URL"},
		{"bad URL", env, []string{"fetch", "imaps:/alice", good}, mailerr.ExitUsage, "bad server URL"},
		{"unknown scheme", env, []string{"fetch", "gopher://alice@127.0.0.1", good}, mailerr.ExitUsage, `unknown scheme "gopher"`},
		{"wrong password", cmdEnv(t, "MAILARK_PASSWORD=wrong"), []string{"fetch", "--ca-file", s.CAFile, imaps, good}, mailerr.ExitAuth, ""},
		{"unreachable port", env, []string{"fetch", "--retries", "0", closed, good}, mailerr.ExitNetwork, ""},
		{"untrusted certificate", env, []string{"fetch", imaps, good}, mailerr.ExitTLS, ""},
		{"unwritable archive path", env, []string{"fetch", "--ca-file", s.CAFile, imaps, "maildir:" + filepath.Join(notDir, "archive")}, mailerr.ExitLocalIO, ""},
		{"corrupt state file", env, []string{"fetch", "--ca-file", s.CAFile, imaps, "maildir:" + corrupt}, mailerr.ExitDamaged, "damaged"},
	}
	before := snapshot(t, filepath.Join(dir, "good"))
	beforeCorrupt := snapshot(t, corrupt)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := runBinary(t, tc.env, tc.args...)
			if p.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", p.code, tc.code, p.stderr)
			}
			if p.stdout != "" {
				t.Errorf("stdout %q", p.stdout)
			}
			if strings.Count(p.stderr, "\n") != 1 || !strings.HasPrefix(p.stderr, "mailark: ") || !strings.Contains(p.stderr, tc.want) {
				t.Errorf("stderr %q: want one line starting with \"mailark: \" containing %q", p.stderr, tc.want)
			}
			t.Logf("stderr: %s", p.stderr)
			if strings.Contains(p.stderr, testbed.Password) {
				t.Errorf("stderr shows the password")
			}
		})
	}
	sameSnapshot(t, "good archive", before, snapshot(t, filepath.Join(dir, "good")))
	sameSnapshot(t, "corrupt archive", beforeCorrupt, snapshot(t, corrupt))
}

func TestE2ERetryAfterDroppedConnection(t *testing.T) {
	store := pop3server.NewMemStore()
	msgs := testbed.GenMessages(14, 30, testbed.GenOptions{})
	want := map[string][]string{}
	for _, m := range msgs {
		store.Add("dave", m.Raw)
		sum := sha256.Sum256(m.Raw)
		want["INBOX"] = append(want["INBOX"], hex.EncodeToString(sum[:]))
	}
	slices.Sort(want["INBOX"])
	var sessions atomic.Int32
	srv := &pop3server.Server{Store: store, Users: map[string]string{"dave": "pw"}, Hooks: pop3server.Hooks{
		// The first session is cut in the middle of the transfer.
		Session: func(n int) int64 {
			sessions.Store(int32(n))
			if n == 1 {
				return 20_000
			}
			return 0
		},
	}}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	arch := "maildir:" + filepath.Join(t.TempDir(), "a")
	p := runBinary(t, cmdEnv(t, "MAILARK_PASSWORD=pw"), "fetch", "--json", "pop3://dave@"+addr, arch)
	if p.code != 0 {
		t.Fatalf("exit %d, stderr %q", p.code, p.stderr)
	}
	if sessions.Load() < 2 {
		t.Errorf("%d POP3 sessions: the cut connection was not retried", sessions.Load())
	}
	sameHashes(t, "archive after retry", archiveHashes(t, arch), want)
}

func TestE2EDryRunChangesNothing(t *testing.T) {
	s, imapUser, _, imapFolders := seededBed(t)
	target := s.AddUser(t, "carol")
	dir := t.TempDir()
	env := cmdEnv(t, "MAILARK_PASSWORD="+testbed.Password)
	arch := filepath.Join(dir, "a")

	p := runBinary(t, env, "fetch", "--dry-run", "--ca-file", s.CAFile, s.URL("imaps", imapUser), "maildir:"+arch)
	if p.code != 0 || !strings.Contains(p.stdout, "dry run: would fetch 120 messages") || !strings.Contains(p.stdout, "Work/2024") {
		t.Errorf("fetch --dry-run: exit %d stdout %q stderr %q", p.code, p.stdout, p.stderr)
	}
	if _, err := os.Stat(arch); err == nil {
		t.Errorf("fetch --dry-run created the archive")
	}
	if p := runBinary(t, env, "fetch", "--ca-file", s.CAFile, s.URL("imaps", imapUser), "maildir:"+arch); p.code != 0 {
		t.Fatalf("fetch: %d %q", p.code, p.stderr)
	}
	before := snapshot(t, arch)
	foldersBefore := s.Folders(t, target)
	p = runBinary(t, env, "restore", "--dry-run", "--ca-file", s.CAFile, "maildir:"+arch, s.URL("imaps", target))
	if p.code != 0 || !strings.Contains(p.stdout, "dry run: would restore 120 messages") {
		t.Errorf("restore --dry-run: exit %d stdout %q stderr %q", p.code, p.stdout, p.stderr)
	}
	if after := s.Folders(t, target); !slices.Equal(after, foldersBefore) {
		t.Errorf("restore --dry-run changed the target's folders: %v → %v", foldersBefore, after)
	}
	if n, _, _ := s.Status(t, target, "INBOX"); n != 0 {
		t.Errorf("restore --dry-run uploaded %d messages", n)
	}
	sameSnapshot(t, "archive after dry runs", before, snapshot(t, arch))

	// The real restore, then a rerun that uploads nothing.
	p = runBinary(t, env, "restore", "--json", "--ca-file", s.CAFile, "maildir:"+arch, s.URL("imaps", target))
	if p.code != 0 || !strings.Contains(p.stdout, `"messages":120,`) {
		t.Errorf("restore: exit %d stdout %q stderr %q", p.code, p.stdout, p.stderr)
	}
	sameHashes(t, "target after restore", serverHashes(t, s, target, imapFolders...), serverHashes(t, s, imapUser, imapFolders...))
	p = runBinary(t, env, "restore", "--json", "--ca-file", s.CAFile, "maildir:"+arch, s.URL("imaps", target))
	if p.code != 0 || !strings.Contains(p.stdout, `"restore":{"folders":`) || !strings.Contains(p.stdout, `"messages":0,`) {
		t.Errorf("second restore: exit %d stdout %q", p.code, p.stdout)
	}
}

func TestE2ESecretsStayOut(t *testing.T) {
	s, imapUser, popUser, _ := seededBed(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "mailark.log")
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte(testbed.Password+"\n"), 0o600)
	env := cmdEnv(t)
	var stderr strings.Builder
	for _, src := range []string{s.URL("imap", imapUser), s.URL("pop3", popUser)} {
		arch := "maildir:" + filepath.Join(dir, "arch-"+strings.SplitN(src, ":", 2)[0])
		p := runBinary(t, env, "fetch", "--verbose", "--log-file", logFile, "--password-file", pwFile, "--ca-file", s.CAFile, src, arch)
		if p.code != 0 {
			t.Fatalf("fetch %s: exit %d %q", src, p.code, p.stderr)
		}
		stderr.WriteString(p.stderr)
	}
	trace := stderr.String()
	if !strings.Contains(trace, "<redacted>") || !strings.Contains(trace, "C: ") {
		t.Errorf("--verbose did not trace the protocol with credentials redacted:\n%.2000s", trace)
	}
	logData, _ := os.ReadFile(logFile)
	plain := base64PLAIN(imapUser, testbed.Password)
	for name, text := range map[string]string{"trace": trace, "log file": string(logData)} {
		if strings.Contains(text, testbed.Password) || strings.Contains(text, plain) {
			t.Errorf("the password appears in the %s", name)
		}
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == pwFile {
			return nil
		}
		if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(testbed.Password)) {
			t.Errorf("the password appears in %s", p)
		}
		return nil
	})
}

func base64PLAIN(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// mboxOf writes messages as a mail client's mbox file (mboxo, LF).
func mboxOf(t *testing.T, path string, msgs []testbed.Message) {
	t.Helper()
	var b bytes.Buffer
	for _, m := range msgs {
		b.WriteString("From someone@example.org " + m.Date.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n")
		for _, line := range strings.SplitAfter(strings.ReplaceAll(string(m.Raw), "\r\n", "\n"), "\n") {
			if strings.HasPrefix(strings.TrimLeft(line, ">"), "From ") {
				line = ">" + line
			}
			b.WriteString(line)
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestE2EMigratePOPWithLocalSent(t *testing.T) {
	s := testbed.Start(t)
	old, target := s.AddUser(t, "old"), s.AddUser(t, "new")
	inbox := testbed.GenMessages(21, 25, testbed.GenOptions{AttachmentRate: -1})
	s.Import(t, old, inbox)
	s.Import(t, target, inbox[:5]) // the new account already has some of them
	dir := t.TempDir()
	sent := filepath.Join(dir, "Sent")
	mboxOf(t, sent, testbed.GenMessages(22, 6, testbed.GenOptions{Folders: []string{"Sent"}, AttachmentRate: -1}))
	env := cmdEnv(t, "MAILARK_PASSWORD="+testbed.Password, "MAILARK_TARGET_PASSWORD="+testbed.Password,
		"XDG_STATE_HOME="+filepath.Join(dir, "state"))
	arch := "maildir:" + filepath.Join(dir, "arch")
	args := []string{"migrate", "--json", "--ca-file", s.CAFile, "--target-ca-file", s.CAFile, "--archive", arch, "--add", sent,
		s.URL("pop3s", old), s.URL("imaps", target)}

	p := runBinary(t, env, args...)
	if p.code != 0 || p.stderr != "" {
		t.Fatalf("migrate: exit %d stderr %q stdout %s", p.code, p.stderr, p.stdout)
	}
	if !strings.Contains(p.stdout, `"messages":26,`) || !strings.Contains(p.stdout, `"skipped":5,`) {
		t.Errorf("want 20 + 6 uploaded and 5 skipped: %s", p.stdout)
	}
	// Every POP message once in the new INBOX, the local Sent in its Sent.
	want := serverHashes(t, s, old, "INBOX")
	sameHashes(t, "new INBOX", serverHashes(t, s, target, "INBOX"), want)
	if n, _, _ := s.Status(t, target, s.SentName); n != 6 {
		t.Errorf("new Sent holds %d messages, want 6", n)
	}

	// A rerun uploads nothing.
	p = runBinary(t, env, args...)
	if p.code != 0 || !strings.Contains(p.stdout, `"restore":{"folders":2,"messages":0,`) {
		t.Errorf("rerun: exit %d stdout %s", p.code, p.stdout)
	}
	if n, _, _ := s.Status(t, target, "INBOX"); n != 25 {
		t.Errorf("after the rerun the new INBOX holds %d, want 25", n)
	}

	// verify is strict both ways: the target's Sent is not in the POP archive.
	p = runBinary(t, env, "verify", "--ca-file", s.CAFile, arch, s.URL("imaps", target))
	if p.code != mailerr.ExitMismatch || !strings.Contains(p.stdout, "6 missing in the archive") {
		t.Errorf("verify: exit %d stdout %q stderr %q", p.code, p.stdout, p.stderr)
	}
}

func TestE2EInterruptExits130(t *testing.T) {
	arch := filepath.Join(t.TempDir(), "a")
	cmd := exec.Command(mailarkBinary(t), "fetch", "--timeout", "1m", stallingPOP3(t), "maildir:"+arch)
	cmd.Env = cmdEnv(t, "MAILARK_PASSWORD=pw")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(arch, ".mailark", "lock")
	waitFor(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(lockFile)
		return strings.Contains(string(b), `"pid":`+strconv.Itoa(cmd.Process.Pid))
	})
	time.Sleep(200 * time.Millisecond) // into the stalled transfer
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("SIGINT did not stop the run")
	}
	t.Logf("stderr: %s", stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != mailerr.ExitInterrupted {
		t.Errorf("exit %d, want 130; stderr %q", code, stderr.String())
	}
	if strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr %q: want one line saying interrupted", stderr.String())
	}
	// The archive is consistent: it opens, and the lock is free again.
	a, err := archive.Open(context.Background(), "maildir:"+arch, archive.Options{})
	if err != nil {
		t.Fatalf("archive after SIGINT: %v", err)
	}
	a.Close()
}
