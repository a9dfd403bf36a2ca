package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
)

// mountTmpfs mounts a tmpfs of the given size ("8m") on a new directory
// and unmounts it when the test ends. It needs root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "not root: cannot mount a small tmpfs to fill up")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot mount a tmpfs: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// TestDiskFull fills a small file system in the middle of a fetch: one
// clear error line with exit code 9, an archive whose every indexed
// message is byte-exact, and once there is room a rerun completes it.
// The archive's files are 0600 and its directories 0700.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	s := testbed.Start(t)
	user := s.AddUser(t, "bigbox")
	folders := []string{"INBOX", "Sent"}
	s.Import(t, user, testbed.GenMessages(21, 120, testbed.GenOptions{Folders: folders, AttachmentRate: 0.9, MaxAttachment: 400 << 10}))
	want := serverSums(t, s, user, folders...)
	var bytes int
	for _, f := range folders {
		for _, m := range s.Fetch(t, user, f) {
			bytes += len(m.Raw)
		}
	}
	if bytes < 12<<20 {
		t.Fatalf("the account holds %d bytes; it must be well over the 8 MB file system", bytes)
	}
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			mnt := mountTmpfs(t, "8m")
			spec := format + ":" + filepath.Join(mnt, "archive")
			home := t.TempDir()
			r := run(t, home, invocation{args: []string{"fetch", "--connections", "1", s.URL("imap", user), spec}, env: passwordEnv})
			if r.code != mailerr.ExitLocalIO {
				t.Fatalf("fetch onto a full disk: exit %d, want %d:\n%s", r.code, mailerr.ExitLocalIO, r)
			}
			checkErrorLines(t, r.stderr, "space")
			// Consistent: it opens, and what it indexed is byte-exact.
			got := archiveSums(t, spec)
			for f, hs := range got {
				if _, extra := multisetDiff(want[f], hs); extra > 0 {
					t.Errorf("folder %q: %d archived message(s) are not byte-exact copies (or are doubled)", f, extra)
				}
			}
			t.Logf("disk full after %d of %d messages: %s", got.total(), want.total(), strings.TrimSpace(r.stderr))

			if out, err := exec.Command("mount", "-o", "remount,size=256m", mnt).CombinedOutput(); err != nil {
				t.Fatalf("remount: %v %s", err, out)
			}
			mustRun(t, home, invocation{args: []string{"fetch", s.URL("imap", user), spec}, env: passwordEnv})
			if d := diffSums(archiveSums(t, spec), want); d != "" {
				t.Errorf("after the rerun with room: %s", d)
			}
			checkModes(t, filepath.Join(mnt, "archive"))
		})
	}
}

// checkModes: every file of an archive is 0600, every directory 0700.
func checkModes(t *testing.T, root string) {
	t.Helper()
	n := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", p, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if n < 5 {
		t.Errorf("only %d entries under %s", n, root)
	}
}

// TestWorldReadableArchiveWarns: an existing archive that other users can
// read still works, and the run says so with the command that fixes it.
func TestWorldReadableArchiveWarns(t *testing.T) {
	t.Parallel()
	s := testbed.Start(t)
	user := s.AddUser(t, "perms")
	seed(t, s, user, 5, 10, "INBOX")
	for _, format := range []string{"maildir", "mbox"} {
		root := filepath.Join(t.TempDir(), "archive")
		spec := format + ":" + root
		home := t.TempDir()
		r := mustRun(t, home, invocation{args: []string{"fetch", s.URL("imap", user), spec}, env: passwordEnv})
		if strings.Contains(r.stderr, "readable") {
			t.Errorf("a fresh archive is reported as readable by others:\n%s", r.stderr)
		}
		checkModes(t, root)
		os.Chmod(root, 0o755)
		r = mustRun(t, home, invocation{args: []string{"fetch", s.URL("imap", user), spec}, env: passwordEnv})
		if !strings.Contains(r.stderr, "readable by other users") || !strings.Contains(r.stderr, "chmod") {
			t.Errorf("%s: no warning about the world-readable archive:\n%s", format, r.stderr)
		}
	}
}
