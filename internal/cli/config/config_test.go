package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

const goodConfig = `# two accounts nightly, one POP box
parallel_jobs = 3
lock_wait = "5m"
retries = 1

[[job]]
name = "work"
source = "imaps://me@mail.example.org"
archive = "maildir:~/Mail/work"
password_command = "pass show mail/work"
exclude = ["Junk", "Trash"]
connections = 6

[[job]]
name = "isp"
source = "pop3s://me@pop.isp.example"
archive = "mbox:isp"
password_file = "isp.pass"
delete_older_than = "30d"

[[job]]
name = "back"
target = "imaps://me@new.example"
archive = "maildir:/srv/mail"
target_password_env = "NEW_PASS"

[[job]]
name = "move"
source = "pop3://me@127.0.0.1:1110"
target = "imap://me@127.0.0.1:1143"
archive = "maildir:/tmp/x"
add = ["/home/me/Sent.mbox"]
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(goodConfig), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ParallelJobs != 3 || time.Duration(cfg.LockWait) != 5*time.Minute || *cfg.Retries != 1 {
		t.Errorf("settings: %+v", cfg)
	}
	want := []Kind{KindFetch, KindFetch, KindRestore, KindMigrate}
	if len(cfg.Jobs) != len(want) {
		t.Fatalf("%d jobs", len(cfg.Jobs))
	}
	for i, k := range want {
		if cfg.Jobs[i].Kind != k {
			t.Errorf("job %d kind %q, want %q (inferred)", i, cfg.Jobs[i].Kind, k)
		}
	}
	if d := time.Duration(cfg.Jobs[1].DeleteOlderThan); d != 30*24*time.Hour {
		t.Errorf("delete_older_than = %v", d)
	}
	if got := cfg.Jobs[0].Where("exclude"); got != "c.toml:11" {
		t.Errorf("Where(exclude) = %q", got)
	}
	if got := cfg.Jobs[2].Where(""); got != "c.toml:21" {
		t.Errorf("Where(header) = %q", got)
	}
	sel, err := cfg.Select([]string{"move", "work"})
	if err != nil || len(sel) != 2 || sel[0].Name != "work" || sel[1].Name != "move" {
		t.Errorf("Select: %v %v", sel, err)
	}
	if _, err := cfg.Select([]string{"nope"}); !errors.Is(err, mailerr.ErrUsage) || !strings.Contains(err.Error(), "work, isp, back, move") {
		t.Errorf("Select unknown: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	job := func(lines ...string) string {
		return "# comment\n[[job]]\nname = \"j\"\n" + strings.Join(lines, "\n") + "\n"
	}
	tests := []struct {
		name string
		doc  string
		perm os.FileMode
		want string // substring, must include file:line
	}{
		{"unknown key", job(`source = "imaps://a@b"`, `archive = "maildir:x"`, `sorce = "x"`), 0o600, `c.toml:6:1: unknown key "job.sorce"`},
		{"unknown top-level key", "jobz = 1\n", 0o600, `c.toml:1:1: unknown key "jobz"`},
		{"wrong type", job(`source = "imaps://a@b"`, `archive = "maildir:x"`, `connections = "many"`), 0o600, `c.toml:6:15: job.connections: cannot decode TOML string`},
		{"bad TOML", "[[job]\nname = 1\n", 0o600, `c.toml:1:`},
		{"unterminated string", job(`source = "imaps://a@b`), 0o600, `c.toml:4:`},
		{"bad duration", job(`source = "pop3s://a@b"`, `archive = "mbox:x"`, `delete_older_than = "thirty days"`), 0o600, `c.toml:6:21: job.delete_older_than: duration "thirty days"`},
		{"bad kind", job(`kind = "backup"`, `source = "imaps://a@b"`, `archive = "maildir:x"`), 0o600, `c.toml:4: kind "backup": use fetch, restore or migrate`},
		{"no source or target", job(`archive = "maildir:x"`), 0o600, `c.toml:2: job has neither source nor target`},
		{"no archive", job(`source = "imaps://a@b"`), 0o600, `c.toml:2: job has no archive`},
		{"fetch with target", job(`kind = "fetch"`, `source = "imaps://a@b"`, `target = "imaps://c@d"`, `archive = "maildir:x"`), 0o600, `c.toml:6: a fetch job has no target`},
		{"add without migrate", job(`source = "imaps://a@b"`, `archive = "maildir:x"`, `add = ["y"]`), 0o600, `c.toml:6: add is for migrate jobs only`},
		{"two secrets", job(`source = "imaps://a@b"`, `archive = "maildir:x"`, `password_file = "f"`, `password_command = "c"`), 0o600, `password_command and password_file both set`},
		{"inline password, file readable by others", job(`source = "imaps://a@b"`, `archive = "maildir:x"`, `password = "hunter2"`), 0o644, `c.toml:6: password inline is accepted only when the config file is readable by its owner alone (chmod 600`},
		{"bad folder_map", job(`target = "imaps://a@b"`, `archive = "maildir:x"`, `folder_map = ["Sent"]`), 0o600, `c.toml:6: folder_map entry "Sent"`},
		{"connections out of range", job(`source = "imaps://a@b"`, `archive = "maildir:x"`, `connections = 500`), 0o600, `c.toml:6: connections = 500`},
		{"duplicate name", job(`source = "imaps://a@b"`, `archive = "maildir:x"`) + job(`source = "imaps://a@b"`, `archive = "maildir:y"`), 0o600, `c.toml:8: job name "j" is already used at c.toml:3`},
		{"no jobs", "parallel_jobs = 2\n", 0o600, `c.toml: no [[job]] table`},
		{"bad parallel_jobs", "parallel_jobs = 0\nparallel_jobs = 2\n", 0o600, `c.toml:2:`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tc.doc), tc.perm)
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.doc)
			}
			if !errors.Is(err, mailerr.ErrUsage) {
				t.Errorf("error is not a usage error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %q", err)
			}
		})
	}
}

func TestInlinePasswordAllowedWhenPrivate(t *testing.T) {
	doc := "[[job]]\nsource = \"imaps://a@b\"\narchive = \"maildir:x\"\npassword = \"hunter2\"\n"
	cfg, err := Parse("c.toml", []byte(doc), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Jobs[0].Password != "hunter2" {
		t.Errorf("password not read")
	}
	if _, err := Parse("c.toml", []byte(doc), 0o640); err == nil {
		t.Errorf("group-readable file accepted with an inline password")
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.toml")
	_, err := Load(missing)
	if !errors.Is(err, mailerr.ErrUsage) || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Errorf("missing file: %v", err)
	}
	_, err = Load(dir)
	if !errors.Is(err, mailerr.ErrUsage) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	p := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(p, []byte("[[job]]\nsource = \"imaps://a@b\"\narchive = \"maildir:x\"\npassword = \"pw\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p+":4") {
		t.Errorf("world-readable inline password: %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Errorf("0600 file refused: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"2w", 14 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"0", 0, false},
		{"", 0, true},
		{"d", 0, true},
		{"-5m", 0, true},
		{"30 days", 0, true},
		{"99999999d", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if s := FormatDuration(30 * 24 * time.Hour); s != "30d" {
		t.Errorf("FormatDuration = %q", s)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("[[job]]\nname = \"a\nconnections = 3\n"))
	f.Add([]byte("[[job]]\n[job.x]\n[[job]]\nsource='imaps://a@b'\narchive='mbox:x'\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := Parse("f.toml", doc, 0o600)
		if err != nil {
			if !errors.Is(err, mailerr.ErrUsage) {
				t.Fatalf("non-usage error: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		for i := range cfg.Jobs {
			if cfg.Jobs[i].Kind == "" || cfg.Jobs[i].Archive == "" {
				t.Fatalf("accepted job without kind or archive: %+v", cfg.Jobs[i])
			}
		}
	})
}
