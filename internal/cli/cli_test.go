package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

// result of one in-process mailark run.
type result struct {
	stdout, stderr string
	err            error
	code           int
}

// runCLI runs mailark in-process with args; terminal says whether stderr
// pretends to be a terminal. engine nil means the real one.
func runCLI(t *testing.T, engine Engine, terminal bool, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errb, StderrIsTerminal: terminal, Version: "test", Engine: engine,
		Sleep: func(context.Context, time.Duration) error { return nil }}
	err := Main(context.Background(), args, env)
	return result{stdout: out.String(), stderr: errb.String(), err: err, code: mailerr.ExitCode(err)}
}

// stubEngine stands in for the core in tests of the command layer itself
// (flags, scheduling, retries, output); the operations are tested against
// real servers elsewhere.
type stubEngine struct {
	mu      sync.Mutex
	fetch   func(FetchRequest) (Stats, error)
	restore func(RestoreRequest) (Stats, error)
	verify  func(VerifyRequest) (VerifyReport, error)
	calls   []string
}

func (s *stubEngine) record(c string) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

func (s *stubEngine) Fetch(ctx context.Context, r FetchRequest) (Stats, error) {
	s.record("fetch " + r.Archive)
	if s.fetch == nil {
		return Stats{Folders: 1}, nil
	}
	return s.fetch(r)
}

func (s *stubEngine) Restore(ctx context.Context, r RestoreRequest) (Stats, error) {
	s.record("restore " + r.Archive)
	if s.restore == nil {
		return Stats{Folders: 1}, nil
	}
	return s.restore(r)
}

func (s *stubEngine) Verify(ctx context.Context, r VerifyRequest) (VerifyReport, error) {
	s.record("verify " + r.Archive)
	if s.verify == nil {
		return VerifyReport{}, nil
	}
	return s.verify(r)
}

func (s *stubEngine) List(ctx context.Context, spec string) (Listing, error) {
	return Listing{}, errors.New("not in stub")
}

func TestPasswordIsNeverAFlag(t *testing.T) {
	for _, cmd := range []string{"fetch", "restore", "migrate", "verify", "run", "ls", "demo"} {
		for _, flag := range []string{"--password=x", "--target-password=x", "-p=x"} {
			r := runCLI(t, &stubEngine{}, false, cmd, flag, "imaps://a@b", "maildir:/tmp/x")
			if r.code != mailerr.ExitUsage || !strings.Contains(r.err.Error(), "unknown") {
				t.Errorf("%s %s: code %d, err %v; want an unknown-flag usage error", cmd, flag, r.code, r.err)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	dir := t.TempDir()
	arch := "maildir:" + filepath.Join(dir, "a")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no args", []string{"fetch"}, "fetch needs SOURCE and ARCHIVE"},
		{"bad URL", []string{"fetch", "not a url", arch}, "bad server URL"},
		{"unknown scheme", []string{"fetch", "ftp://me@host", arch}, `unknown scheme "ftp"`},
		{"password in URL", []string{"fetch", "imaps://me:secret@host", arch}, "a password in the URL is not accepted"},
		{"bad archive spec", []string{"fetch", "imaps://me@host", "zip:/x"}, `unknown format "zip"`},
		{"archive without format", []string{"fetch", "imaps://me@host", "/tmp/x"}, "maildir:PATH or mbox:PATH"},
		{"connections", []string{"fetch", "--connections", "0", "imaps://me@host", arch}, "--connections 0"},
		{"progress", []string{"fetch", "--progress", "sometimes", "imaps://me@host", arch}, `--progress "sometimes"`},
		{"delete on IMAP", []string{"fetch", "--delete", "imaps://me@host", arch}, "are for POP3 sources"},
		{"delete twice", []string{"fetch", "--delete", "--delete-older-than", "3d", "pop3s://me@host", arch}, "choose one"},
		{"bad duration", []string{"fetch", "--delete-older-than", "soon", "pop3s://me@host", arch}, `duration "soon"`},
		{"bad pattern", []string{"fetch", "--include", "[", "imaps://me@host", arch}, `folder pattern "["`},
		{"plaintext remote", []string{"fetch", "imap://me@mail.example.org?tls=none", arch}, "pass --plaintext"},
		{"file and command", []string{"fetch", "--password-file", "f", "--password-command", "c", "imaps://me@host", arch}, "choose one"},
		{"oauth without token", []string{"fetch", "imaps://me@host?auth=xoauth2", arch}, "--oauth-token-command"},
		{"migrate without archive", []string{"migrate", "pop3s://me@a", "imaps://me@b"}, "migrate needs --archive"},
		{"restore to POP3", []string{"restore", arch, "pop3s://me@host"}, "needs an IMAP target"},
		{"bad folder map", []string{"restore", "--folder-map", "Sent", arch, "imaps://me@host"}, `--folder-map "Sent"`},
		{"verify args", []string{"verify", arch}, "verify needs ARCHIVE and URL"},
		{"unknown command", []string{"backup"}, `unknown command "backup"`},
		{"misspelt command", []string{"fech", "a", "b"}, `unknown command "fech" for "mailark" Did you mean this? fetch`},
		{"flags before the command", []string{"--json", "fetch", "imaps://me@host", arch}, "flags go after the command"},
		{"demo args", []string{"demo", "now"}, "demo takes no arguments"},
		{"missing CA file", []string{"fetch", "--ca-file", filepath.Join(dir, "none.pem"), "imaps://me@host", arch}, "cannot read --ca-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := &stubEngine{}
			r := runCLI(t, eng, false, tc.args...)
			if r.code != mailerr.ExitUsage {
				t.Fatalf("exit code %d (%v), want %d", r.code, r.err, mailerr.ExitUsage)
			}
			if !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", r.err, tc.want)
			}
			if line := FormatError(r.err); strings.Contains(line, "\n") || strings.Contains(line, "secret") {
				t.Errorf("error line %q: not one line, or shows the password", line)
			}
			if len(eng.calls) > 0 {
				t.Errorf("engine called despite a usage error: %v", eng.calls)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
		})
	}
}

func TestQuietWithoutTerminal(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	arch := "maildir:" + filepath.Join(t.TempDir(), "a")
	eng := &stubEngine{fetch: func(FetchRequest) (Stats, error) {
		return Stats{Folders: 3, Messages: 12, Bytes: 4096}, nil
	}}
	r := runCLI(t, eng, false, "fetch", "imaps://me@host", arch)
	if r.err != nil || r.stdout != "" || r.stderr != "" {
		t.Errorf("cron run: err %v, stdout %q, stderr %q; want silence", r.err, r.stdout, r.stderr)
	}
	r = runCLI(t, eng, true, "fetch", "--progress", "never", "imaps://me@host", arch)
	if r.err != nil || !strings.Contains(r.stdout, "fetched 12 new messages (4.0 KiB) from 3 folders of imaps://me@host:993") {
		t.Errorf("terminal run: err %v, stdout %q", r.err, r.stdout)
	}
	r = runCLI(t, eng, true, "fetch", "--quiet", "imaps://me@host", arch)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("--quiet: stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestJSONOutput(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	arch := "mbox:" + filepath.Join(t.TempDir(), "a")
	eng := &stubEngine{fetch: func(FetchRequest) (Stats, error) {
		return Stats{Folders: 2, Messages: 5, Bytes: 100}, mailerr.E(mailerr.ErrPartial, nil, "folder Junk skipped")
	}}
	r := runCLI(t, eng, false, "fetch", "--json", "imaps://me@host", arch)
	if r.code != mailerr.ExitPartial {
		t.Fatalf("code %d, err %v", r.code, r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", r.stdout)
	}
	var job jobResult
	var sum runSummary
	if err := json.Unmarshal([]byte(lines[0]), &job); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &sum); err != nil {
		t.Fatal(err)
	}
	if job.Type != "job" || job.Status != "partial" || job.ExitCode != 3 || job.Fetch == nil || job.Fetch.Messages != 5 ||
		!strings.Contains(job.Error, "folder Junk skipped") || job.Source != "imaps://me@host:993" {
		t.Errorf("job object: %+v", job)
	}
	if sum.Type != "summary" || sum.Jobs != 1 || sum.Partial != 1 || sum.Messages != 5 || sum.ExitCode != 3 {
		t.Errorf("summary object: %+v", sum)
	}
}

func TestRetryOnNetworkErrorsOnly(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	arch := "maildir:" + filepath.Join(t.TempDir(), "a")
	tests := []struct {
		name     string
		errs     []error // returned by successive attempts; then success
		retries  string
		attempts int
		code     int
	}{
		{"recovers", []error{netErr(), netErr()}, "3", 3, 0},
		{"gives up", []error{netErr(), netErr(), netErr(), netErr()}, "3", 4, mailerr.ExitNetwork},
		{"no retries", []error{netErr()}, "0", 1, mailerr.ExitNetwork},
		{"auth is final", []error{mailerr.E(mailerr.ErrAuth, nil, "login refused")}, "3", 1, mailerr.ExitAuth},
		{"tls is final", []error{mailerr.E(mailerr.ErrTLS, mailerr.E(mailerr.ErrNetwork, nil, "x"), "untrusted")}, "3", 1, mailerr.ExitTLS},
		{"locked is final", []error{mailerr.E(mailerr.ErrLocked, nil, "locked by pid 1")}, "3", 1, mailerr.ExitLocked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			eng := &stubEngine{fetch: func(FetchRequest) (Stats, error) {
				n++
				if n <= len(tc.errs) {
					return Stats{}, tc.errs[n-1]
				}
				return Stats{Folders: 1}, nil
			}}
			var slept []time.Duration
			var out, errb bytes.Buffer
			env := Env{Stdout: &out, Stderr: &errb, Engine: eng, Sleep: func(_ context.Context, d time.Duration) error {
				slept = append(slept, d)
				return nil
			}}
			err := Main(context.Background(), []string{"fetch", "--json", "--retries", tc.retries, "imaps://me@host", arch}, env)
			if got := mailerr.ExitCode(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			for i, d := range slept {
				if want := retryDelays[min(i, len(retryDelays)-1)]; d != want {
					t.Errorf("wait %d = %v, want %v", i, d, want)
				}
			}
			var job jobResult
			json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &job)
			if job.Attempts != tc.attempts {
				t.Errorf("JSON attempts %d, want %d", job.Attempts, tc.attempts)
			}
		})
	}
}

func netErr() error {
	return mailerr.E(mailerr.ErrNetwork, errors.New("connection reset by peer"), "fetch INBOX")
}

func TestTargetPasswordFallback(t *testing.T) {
	dir := t.TempDir()
	arch := "maildir:" + filepath.Join(dir, "a")
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	secretOf := func(args ...string) (string, error) {
		var got string
		eng := &stubEngine{restore: func(r RestoreRequest) (Stats, error) {
			s, err := r.Target.Secret.Secret(context.Background())
			got = s
			return Stats{}, err
		}}
		r := runCLI(t, eng, false, append([]string{"restore"}, append(args, arch, "imaps://me@host")...)...)
		return got, r.err
	}
	t.Setenv(EnvPassword, "general")
	os.Unsetenv(EnvTargetPassword)
	if s, err := secretOf(); s != "general" || err != nil {
		t.Errorf("fallback to MAILARK_PASSWORD: %q %v", s, err)
	}
	t.Setenv(EnvTargetPassword, "target")
	if s, _ := secretOf(); s != "target" {
		t.Errorf("MAILARK_TARGET_PASSWORD first: %q", s)
	}
	if s, _ := secretOf("--password-file", pwFile); s != "from-file" {
		t.Errorf("--password-file names restore's account: %q", s)
	}
	if s, _ := secretOf("--target-password-file", pwFile, "--password-command", "echo no"); s != "from-file" {
		t.Errorf("--target-password-file wins: %q", s)
	}
	os.Unsetenv(EnvTargetPassword)
	os.Unsetenv(EnvPassword)
	if _, err := secretOf(); err == nil || !strings.Contains(err.Error(), "MAILARK_TARGET_PASSWORD or MAILARK_PASSWORD") {
		t.Errorf("no password: %v", err)
	}

	// migrate keeps the two accounts apart.
	t.Setenv(EnvPassword, "old")
	t.Setenv(EnvTargetPassword, "new")
	var src, dst string
	eng := &stubEngine{
		fetch: func(r FetchRequest) (Stats, error) {
			src, _ = r.Source.Secret.Secret(context.Background())
			return Stats{}, nil
		},
		restore: func(r RestoreRequest) (Stats, error) {
			dst, _ = r.Target.Secret.Secret(context.Background())
			return Stats{}, nil
		},
	}
	r := runCLI(t, eng, false, "migrate", "--archive", arch, "pop3s://me@old", "imaps://me@new")
	if r.err != nil || src != "old" || dst != "new" {
		t.Errorf("migrate secrets: src %q dst %q err %v", src, dst, r.err)
	}
}

func TestMigrateSteps(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	dir := t.TempDir()
	arch := filepath.Join(dir, "a")
	sent := filepath.Join(dir, "Sent.mbox")
	eng := &stubEngine{
		verify: func(r VerifyRequest) (VerifyReport, error) {
			return VerifyReport{Folders: []VerifyFolder{{Name: "INBOX", Matched: 3, MissingInArchive: 2}}}, nil
		},
	}
	r := runCLI(t, eng, false, "migrate", "--archive", "maildir:"+arch, "--add", sent, "pop3s://me@old", "imaps://me@new")
	if r.err != nil {
		t.Fatalf("migrate: %v", r.err)
	}
	want := []string{"fetch maildir:" + arch, "restore maildir:" + arch, "restore " + sent, "verify maildir:" + arch, "verify " + sent}
	if fmt.Sprint(eng.calls) != fmt.Sprint(want) {
		t.Errorf("steps %v, want %v", eng.calls, want)
	}
	// Mail on the target that the archive lacks is fine after a migrate;
	// archived mail missing on the target is not.
	eng.verify = func(r VerifyRequest) (VerifyReport, error) {
		return VerifyReport{Folders: []VerifyFolder{{Name: "INBOX", MissingOnServer: 1}}}, nil
	}
	r = runCLI(t, eng, false, "migrate", "--archive", "maildir:"+arch, "pop3s://me@old", "imaps://me@new")
	if r.code != mailerr.ExitMismatch || !strings.Contains(r.stdout, "1 missing on the server") {
		t.Errorf("lost message: code %d err %v stdout %q", r.code, r.err, r.stdout)
	}
	// A failed fetch stops the job; a partial one does not.
	eng.calls = nil
	eng.verify = nil
	eng.fetch = func(FetchRequest) (Stats, error) { return Stats{}, mailerr.E(mailerr.ErrAuth, nil, "login refused") }
	r = runCLI(t, eng, false, "migrate", "--archive", "maildir:"+arch, "pop3s://me@old", "imaps://me@new")
	if r.code != mailerr.ExitAuth || len(eng.calls) != 1 {
		t.Errorf("auth failure: code %d calls %v", r.code, eng.calls)
	}
	eng.calls = nil
	eng.fetch = func(FetchRequest) (Stats, error) {
		return Stats{}, mailerr.E(mailerr.ErrPartial, nil, "1 folder failed")
	}
	r = runCLI(t, eng, false, "migrate", "--archive", "maildir:"+arch, "pop3s://me@old", "imaps://me@new")
	if r.code != mailerr.ExitPartial || len(eng.calls) != 3 {
		t.Errorf("partial fetch: code %d calls %v", r.code, eng.calls)
	}
}

func TestVerifyExitCodes(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	arch := "maildir:" + filepath.Join(t.TempDir(), "a")
	eng := &stubEngine{verify: func(VerifyRequest) (VerifyReport, error) {
		return VerifyReport{Folders: []VerifyFolder{{Name: "INBOX", Matched: 5}, {Name: "Sent", Target: "Sent Items", Matched: 1}}}, nil
	}}
	if r := runCLI(t, eng, true, "verify", arch, "imaps://me@host"); r.err != nil || !strings.Contains(r.stdout, "verified: archive and server match (6 messages in 2 folders)") {
		t.Errorf("match: %v %q", r.err, r.stdout)
	}
	eng.verify = func(VerifyRequest) (VerifyReport, error) {
		return VerifyReport{Folders: []VerifyFolder{{Name: "INBOX", Matched: 5}, {Name: "Sent", Target: "Sent Items", MissingInArchive: 2}}}, nil
	}
	r := runCLI(t, eng, false, "verify", arch, "imaps://me@host")
	if r.code != mailerr.ExitMismatch || !strings.Contains(r.stdout, "Sent → Sent Items") || !strings.Contains(r.stdout, "2 missing in the archive") {
		t.Errorf("mismatch: code %d stdout %q", r.code, r.stdout)
	}
}

func TestLogFileAppends(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mailark.log")
	arch := "maildir:" + filepath.Join(dir, "a")
	eng := &stubEngine{}
	for i := 0; i < 2; i++ {
		if r := runCLI(t, eng, false, "fetch", "--log-file", logPath, "imaps://me@host", arch); r.err != nil || r.stderr != "" {
			t.Fatalf("run %d: %v %q", i, r.err, r.stderr)
		}
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `msg="job ended"`); n != 2 {
		t.Errorf("log has %d job-ended lines, want 2 (appended):\n%s", n, data)
	}
	if strings.Contains(string(data), "pw") && strings.Contains(string(data), "password=pw") {
		t.Errorf("log shows the password")
	}
	if st, _ := os.Stat(logPath); st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v", st.Mode().Perm())
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, nil, false, "--version")
	if r.err != nil || r.stdout != "mailark test\n" {
		t.Errorf("--version: %v %q", r.err, r.stdout)
	}
}

func TestCompletion(t *testing.T) {
	r := runCLI(t, nil, false, "completion", "bash")
	if r.err != nil || !strings.Contains(r.stdout, "__start_mailark") {
		t.Errorf("completion bash: %v (%d bytes)", r.err, len(r.stdout))
	}
}

func TestHelpShowsExamplesAndExitCodes(t *testing.T) {
	for _, cmd := range []string{"fetch", "restore", "migrate", "verify", "ls", "run", "demo"} {
		r := runCLI(t, nil, false, cmd, "--help")
		if r.err != nil {
			t.Fatalf("%s --help: %v", cmd, r.err)
		}
		for _, want := range []string{"Examples:", "Exit codes:", "  7  the archive is locked by another run", "130  interrupted"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s --help lacks %q", cmd, want)
			}
		}
	}
}

func TestInterruptedNeverExitsZero(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	arch := "maildir:" + filepath.Join(t.TempDir(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	eng := &stubEngine{fetch: func(FetchRequest) (Stats, error) {
		cancel() // SIGINT arrives while the fetch finishes
		return Stats{}, nil
	}}
	var out, errb bytes.Buffer
	err := Main(ctx, []string{"fetch", "imaps://me@host", arch}, Env{Stdout: &out, Stderr: &errb, Engine: eng})
	if mailerr.ExitCode(err) != mailerr.ExitInterrupted {
		t.Errorf("exit code %d (%v), want 130", mailerr.ExitCode(err), err)
	}
}

func TestOAuthTokenCommand(t *testing.T) {
	t.Setenv(EnvPassword, "not-a-token")
	arch := "maildir:" + filepath.Join(t.TempDir(), "a")
	var got string
	var auth string
	eng := &stubEngine{fetch: func(r FetchRequest) (Stats, error) {
		got, _ = r.Source.Secret.Secret(context.Background())
		auth = string(r.Source.Auth)
		return Stats{}, nil
	}}
	r := runCLI(t, eng, false, "fetch", "--oauth-token-command", "echo ya29.token", "imaps://me@gmail.example?auth=xoauth2", arch)
	if r.err != nil || got != "ya29.token" || auth != "xoauth2" {
		t.Errorf("token %q auth %q err %v", got, auth, r.err)
	}
	// A token command on a password account is not used for the password.
	r = runCLI(t, eng, false, "fetch", "--oauth-token-command", "echo ya29.token", "imaps://me@host", arch)
	if r.err != nil || got != "not-a-token" {
		t.Errorf("password account used %q (err %v)", got, r.err)
	}
}
