package testbed

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// CopyForDovecot copies a mail tree (an archive written by the tests) into
// a fresh directory under the server's dir, owned by the unprivileged mail
// user, and returns its path. Dovecot will not read mail as root and writes
// its own files into the tree it serves, so tests give it a copy; file times
// are kept because they are maildir INTERNALDATEs.
func (s *Server) CopyForDovecot(t testing.TB, src string) string {
	t.Helper()
	dst, err := os.MkdirTemp(s.Dir, "tree-copy-")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		} else {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, data, 0o600); err != nil {
				return err
			}
			if err := os.Chtimes(target, info.ModTime(), info.ModTime()); err != nil {
				return err
			}
		}
		return os.Lchown(target, s.vmail.uid, s.vmail.gid)
	})
	if err != nil {
		t.Fatalf("copy %s for Dovecot: %v", src, err)
	}
	return dst
}
