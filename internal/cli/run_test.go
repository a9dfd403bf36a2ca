package cli

import (
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

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunSchedulesByArchive(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	cfg := writeConfig(t, `
[[job]]
name = "a1"
source = "imaps://me@a"
archive = "maildir:shared"

[[job]]
name = "b"
source = "imaps://me@b"
archive = "maildir:other"

[[job]]
name = "a2"
source = "pop3s://me@c"
archive = "maildir:./shared/"

[[job]]
name = "d"
source = "imaps://me@d"
archive = "mbox:third"
`)
	var mu sync.Mutex
	running := map[string]int{} // archive → jobs in it now
	total, peak := 0, 0
	var order []string
	eng := &stubEngine{fetch: func(r FetchRequest) (Stats, error) {
		mu.Lock()
		running[r.Archive]++
		total++
		peak = max(peak, total)
		overlap := running[r.Archive] > 1
		order = append(order, r.Source.Host)
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		running[r.Archive]--
		total--
		mu.Unlock()
		if overlap {
			return Stats{}, errors.New("two jobs in one archive at once")
		}
		return Stats{Folders: 1}, nil
	}}
	r := runCLI(t, eng, false, "run", "--config", cfg, "--jobs", "2")
	if r.err != nil || r.stdout != "" || r.stderr != "" {
		t.Fatalf("run: %v, stdout %q, stderr %q", r.err, r.stdout, r.stderr)
	}
	if peak != 2 {
		t.Errorf("peak parallelism %d, want 2", peak)
	}
	posA, posC := strings.Index(strings.Join(order, ","), "a"), strings.Index(strings.Join(order, ","), "c")
	if posA > posC {
		t.Errorf("jobs on one archive ran out of file order: %v", order)
	}
	dir := filepath.Dir(cfg)
	for _, c := range eng.calls {
		if !strings.HasPrefix(strings.TrimPrefix(strings.TrimPrefix(c, "fetch "), "maildir:"), dir) &&
			!strings.HasPrefix(strings.TrimPrefix(c, "fetch mbox:"), dir) {
			t.Errorf("relative archive not resolved against the config's directory: %s", c)
		}
	}
}

func TestRunOutcomes(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	cfg := writeConfig(t, `
[[job]]
name = "work"
source = "imaps://me@work"
archive = "maildir:w"

[[job]]
name = "home"
source = "imaps://me@home"
archive = "maildir:h"
`)
	fail := func(host string, err error) func(FetchRequest) (Stats, error) {
		return func(r FetchRequest) (Stats, error) {
			if r.Source.Host == host || host == "*" {
				return Stats{}, err
			}
			return Stats{Folders: 1, Messages: 2}, nil
		}
	}
	auth := mailerr.E(mailerr.ErrAuth, nil, "login to imaps://me@home:993 refused; check the password")
	locked := mailerr.E(mailerr.ErrLocked, nil, "archive is locked by pid 42 on box since 03:00")

	// One of two fails: partial, and one stderr line names the job.
	r := runCLI(t, &stubEngine{fetch: fail("home", auth)}, false, "run", "--config", cfg)
	if r.code != mailerr.ExitPartial || !strings.Contains(r.err.Error(), "1 of 2 jobs failed: home") {
		t.Errorf("partial: code %d err %v", r.code, r.err)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "mailark: home: login to imaps://me@home:993 refused") {
		t.Errorf("stderr %q", r.stderr)
	}
	// All fail alike: that kind's code (locked: 7).
	r = runCLI(t, &stubEngine{fetch: fail("*", locked)}, false, "run", "--config", cfg)
	if r.code != mailerr.ExitLocked {
		t.Errorf("all locked: code %d err %v", r.code, r.err)
	}
	// A named job alone: its own error and code, printed once (by main).
	r = runCLI(t, &stubEngine{fetch: fail("home", auth)}, false, "run", "--config", cfg, "home")
	if r.code != mailerr.ExitAuth || r.stderr != "" {
		t.Errorf("named job: code %d err %v stderr %q", r.code, r.err, r.stderr)
	}
	// Unknown job name: usage.
	r = runCLI(t, &stubEngine{}, false, "run", "--config", cfg, "play")
	if r.code != mailerr.ExitUsage || !strings.Contains(r.err.Error(), `no job named "play" (jobs: work, home)`) {
		t.Errorf("unknown job: code %d err %v", r.code, r.err)
	}
	// Terminal: one summary line per job and one for the run.
	r = runCLI(t, &stubEngine{}, true, "run", "--progress", "never", "--config", cfg)
	if r.err != nil || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "run: 2 jobs, 2 ok") {
		t.Errorf("terminal: %v %q", r.err, r.stdout)
	}
	// JSON: one object per job, then the summary.
	r = runCLI(t, &stubEngine{fetch: fail("home", auth)}, false, "run", "--json", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"type":"summary"`) || !strings.Contains(lines[2], `"failed":1`) {
		t.Errorf("json: %q", r.stdout)
	}
}

func TestRunConfigErrors(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	tests := []struct {
		name, body, want string
	}{
		{"bad URL", "[[job]]\nsource = \"imaps//me@host\"\narchive = \"maildir:x\"\n", `config.toml:2: bad server URL "imaps//me@host"`},
		{"unknown scheme", "[[job]]\nsource = \"imapx://me@host\"\narchive = \"maildir:x\"\n", `config.toml:2: bad server URL "imapx://me@host": unknown scheme "imapx"`},
		{"bad archive", "[[job]]\nsource = \"imaps://me@host\"\narchive = \"tar:x\"\n", `config.toml:3: archive "tar:`},
		{"restore to pop", "[[job]]\ntarget = \"pop3s://me@host\"\narchive = \"maildir:x\"\n", `config.toml:2: restore needs an IMAP target`},
		{"delete on IMAP", "[[job]]\nsource = \"imaps://me@host\"\narchive = \"maildir:x\"\ndelete = true\n", `config.toml:4: --delete, --delete-older-than and --mark-seen are for POP3 sources`},
		{"bad pattern", "[[job]]\nsource = \"imaps://me@host\"\narchive = \"maildir:x\"\ninclude = [\"[\"]\n", `config.toml:4: folder pattern "["`},
		{"unknown key", "[[job]]\nsource = \"imaps://me@host\"\narchive = \"maildir:x\"\ndelet = true\n", `config.toml:4:1: unknown key "job.delet"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := &stubEngine{}
			r := runCLI(t, eng, false, "run", "--config", writeConfig(t, tc.body))
			if r.code != mailerr.ExitUsage || !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("code %d, err %v\nwant %q", r.code, r.err, tc.want)
			}
			if len(eng.calls) != 0 {
				t.Errorf("jobs ran despite a config error: %v", eng.calls)
			}
		})
	}
	r := runCLI(t, &stubEngine{}, false, "run", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	if r.code != mailerr.ExitUsage || !strings.Contains(r.err.Error(), "missing.toml does not exist") {
		t.Errorf("missing config: %d %v", r.code, r.err)
	}
	// Without --config, the XDG location is used.
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	r = runCLI(t, &stubEngine{}, false, "run")
	if want := filepath.Join(xdg, "mailark", "config.toml") + " does not exist"; r.code != mailerr.ExitUsage || !strings.Contains(r.err.Error(), want) {
		t.Errorf("default config: %d %v, want %q", r.code, r.err, want)
	}
}

func TestRunConfigSettings(t *testing.T) {
	t.Setenv(EnvPassword, "pw")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.toml")
	body := fmt.Sprintf(`retries = 0
lock_wait = "90s"
log_file = "run.log"

[[job]]
name = "isp"
source = "pop3s://me@pop.isp"
archive = "mbox:isp"
password_file = "isp.pw"
delete_older_than = "30d"
`)
	os.WriteFile(cfgPath, []byte(body), 0o600)
	os.WriteFile(filepath.Join(dir, "isp.pw"), []byte("s3cret\n"), 0o600)
	var got FetchRequest
	var secret string
	attempts := 0
	eng := &stubEngine{fetch: func(r FetchRequest) (Stats, error) {
		attempts++
		got = r
		secret, _ = r.Source.Secret.Secret(t.Context())
		return Stats{}, netErr()
	}}
	r := runCLI(t, eng, false, "run", "--config", cfgPath)
	if r.code != mailerr.ExitNetwork || attempts != 1 {
		t.Errorf("retries = 0: code %d attempts %d", r.code, attempts)
	}
	if got.LockWait != 90*time.Second || got.DeleteOlderThan != 30*24*time.Hour || secret != "s3cret" {
		t.Errorf("request: lockwait %v delete %v secret %q", got.LockWait, got.DeleteOlderThan, secret)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "run.log")); err != nil || !strings.Contains(string(data), "job=isp") {
		t.Errorf("log_file relative to the config: %v %q", err, data)
	}
	// Flags override the file.
	attempts = 0
	runCLI(t, eng, false, "run", "--config", cfgPath, "--retries", "2", "--lock-wait", "1s")
	if attempts != 3 || got.LockWait != time.Second {
		t.Errorf("flags override: attempts %d lockwait %v", attempts, got.LockWait)
	}
}
