package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
)

// secretForms are the ways a password can leak: as itself, and base64
// encoded alone or inside a SASL PLAIN response ("\0user\0pass",
// "user\0user\0pass").
func secretForms(user, password string) map[string]string {
	forms := map[string]string{"the password": password}
	for name, raw := range map[string]string{
		"base64(password)":           password,
		"base64(\\0user\\0pass)":     "\x00" + user + "\x00" + password,
		"base64(user\\0user\\0pass)": user + "\x00" + user + "\x00" + password,
	} {
		forms[name] = base64.StdEncoding.EncodeToString([]byte(raw))
		forms[name+" (raw URL)"] = base64.RawStdEncoding.EncodeToString([]byte(raw))
	}
	return forms
}

// cmdlineWatch samples /proc/PID/cmdline of a running mailark until it
// exits and records every distinct command line seen.
type cmdlineWatch struct {
	mu    sync.Mutex
	seen  map[string]bool
	count int
	wg    sync.WaitGroup
}

func (w *cmdlineWatch) watch(pid int) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		path := fmt.Sprintf("/proc/%d/cmdline", pid)
		for {
			b, err := os.ReadFile(path)
			if err != nil || len(b) == 0 {
				return // gone (or a zombie)
			}
			w.mu.Lock()
			if w.seen == nil {
				w.seen = map[string]bool{}
			}
			w.seen[string(b)] = true
			w.count++
			w.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
}

// TestSecretsNeverWritten runs fetch (IMAP and POP3), restore and run with
// --verbose, --log-file and --json, the password coming from the
// environment, a file and a command, while the process's command line is
// sampled. Neither the password nor its base64 forms (AUTHENTICATE PLAIN)
// may appear in argv, stdout, stderr, the trace, the log file, or any file
// mailark wrote; nor in the one error line of a wrong-password run.
func TestSecretsNeverWritten(t *testing.T) {
	t.Parallel()
	const password = "Zq7-distinct-S3cr3t_pw"
	s := testbed.Start(t)
	user := "secretsrc"
	s.AddUserWithPassword(t, user, password)
	target := "secrettgt"
	s.AddUserWithPassword(t, target, password)
	seed(t, s, user, 11, 25, "INBOX", "Sent")

	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	logFile := filepath.Join(dir, "mailark.log")
	imapArchive := "maildir:" + filepath.Join(dir, "imap-archive")
	popArchive := "mbox:" + filepath.Join(dir, "pop-archive")
	config := filepath.Join(dir, "config.toml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
[[job]]
name = "nightly"
source = %q
archive = %q
password_command = "cat %s"
`, s.URL("imap", user), "mbox:"+filepath.Join(dir, "run-archive"), pwFile)), 0o600)

	common := []string{"--verbose", "--log-file", logFile, "--json"}
	runs := []invocation{
		{args: append([]string{"fetch", s.URL("imap", user), imapArchive}, common...), env: []string{"MAILARK_PASSWORD=" + password}},
		{args: append([]string{"fetch", "--password-file", pwFile, s.URL("pop3", user), popArchive}, common...)},
		{args: append([]string{"restore", "--target-password-command", "cat " + pwFile, imapArchive, s.URL("imap", target)}, common...)},
		{args: append([]string{"run", "--config", config}, common...)},
		{args: append([]string{"fetch", "--ca-file", s.CAFile, s.URL("imaps", user), imapArchive}, common...), env: []string{"MAILARK_PASSWORD=" + password}},
	}
	var watch cmdlineWatch
	var outputs bytes.Buffer
	for _, inv := range runs {
		inv.onStart = watch.watch
		r := run(t, home, inv)
		if r.code != 0 {
			t.Fatalf("want success:\n%s", r)
		}
		outputs.WriteString(r.stdout)
		outputs.WriteString(r.stderr)
		if !strings.Contains(r.stderr, "C: ") {
			t.Errorf("--verbose printed no protocol trace for %v", inv.args[:2])
		}
	}
	watch.wg.Wait()
	forms := secretForms(user, password)
	for cmdline := range watch.seen {
		for name, f := range forms {
			if strings.Contains(cmdline, f) {
				t.Errorf("%s in /proc/PID/cmdline: %q", name, cmdline)
			}
		}
	}
	if watch.count == 0 {
		t.Errorf("the command line was never sampled")
	}
	checkNoSecret(t, "stdout/stderr/trace", outputs.Bytes(), forms)
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == pwFile || p == config {
			return err
		}
		files++
		checkNoSecret(t, p, mustRead(t, p), forms)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(logFile); err != nil || st.Size() == 0 {
		t.Errorf("the log file was not written")
	}

	// A wrong password: exit 4, one error line, and the password it tried
	// appears nowhere in the output.
	const wrong = "Wr0ng-distinct-Pa55word"
	for _, url := range []string{s.URL("imap", user), s.URL("pop3", user)} {
		r := run(t, home, invocation{args: append([]string{"fetch", url, "maildir:" + filepath.Join(dir, "never")}, common...), env: []string{"MAILARK_PASSWORD=" + wrong}})
		if r.code != mailerr.ExitAuth {
			t.Errorf("wrong password: exit %d, want %d:\n%s", r.code, mailerr.ExitAuth, r)
		}
		checkNoSecret(t, "wrong-password output", []byte(r.stdout+r.stderr), secretForms(user, wrong))
		checkNoSecret(t, "log file", mustRead(t, logFile), secretForms(user, wrong))
	}
	t.Logf("%d files, %d command-line samples and all output checked for %d forms of the password", files, watch.count, len(forms))
}

func checkNoSecret(t *testing.T, where string, data []byte, forms map[string]string) {
	t.Helper()
	for name, f := range forms {
		if bytes.Contains(data, []byte(f)) {
			t.Errorf("%s found in %s", name, where)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
