package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailark/mailark/internal/mailerr"
)

// Deterministic versions of what a crash leaves, one at a time.

func writeOne(t *testing.T, f Format, dir string, bodies ...string) (*Archive, *Folder) {
	t.Helper()
	a := mustOpen(t, f, dir, Options{})
	fo := mustCreate(t, a, "INBOX")
	for _, b := range bodies {
		mustAppend(t, fo, []byte(b), AppendInfo{Date: testDate})
	}
	mustCommit(t, fo)
	return a, fo
}

func indexPath(dir string) string {
	return filepath.Join(dir, ".mailark", "folders", "0001", "index.jsonl")
}

func TestTornIndexLineDropped(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a, fo := writeOne(t, f, dir, "Subject: 1\n\none\n", "Subject: 2\n\ntwo\n")
		// Append a third message and write half its index record, as a
		// kill in the middle of Commit would.
		m := mustAppend(t, fo, []byte("Subject: 3\n\nthree\n"), AppendInfo{})
		if err := syncStore(fo.st); err != nil {
			t.Fatal(err)
		}
		idx, _ := os.ReadFile(indexPath(dir))
		f2, _ := os.OpenFile(indexPath(dir), os.O_APPEND|os.O_WRONLY, 0)
		f2.WriteString(`{"op":"add","key":"` + m.Key + `","size":1`)
		f2.Close()
		a.lock.Unlock() // simulate the crash: no Close, no rollback

		a = mustOpen(t, f, dir, Options{})
		defer a.Close()
		fo, err := a.Folder("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if n := len(fo.Entries()); n != 2 {
			t.Fatalf("%d entries, want 2", n)
		}
		if got, _ := os.ReadFile(indexPath(dir)); !bytes.Equal(got, idx) {
			t.Fatalf("torn line not cut: %q", got[len(idx):])
		}
		assertNothingUnindexed(t, fo)
		// The folder goes on working.
		mustAppend(t, fo, []byte("Subject: 4\n\nfour\n"), AppendInfo{})
		mustCommit(t, fo)
		if n := len(fo.Entries()); n != 3 {
			t.Fatalf("%d entries after another commit", n)
		}
	})
}

func TestDamagedIndexLineIsCorrupt(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a, _ := writeOne(t, f, dir, "Subject: 1\n\none\n", "Subject: 2\n\ntwo\n")
		a.Close()
		data, _ := os.ReadFile(indexPath(dir))
		data[10] = '#'
		os.WriteFile(indexPath(dir), data, 0o600)
		a = mustOpen(t, f, dir, Options{})
		defer a.Close()
		_, err := a.Folder("INBOX")
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, mailerr.ErrDamaged) || mailerr.ExitCode(err) != mailerr.ExitDamaged {
			t.Fatalf("Folder with a damaged index line: %v", err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is more than one line: %q", err)
		}
	})
}

func TestMboxForeignTailKeptAside(t *testing.T) {
	dir := t.TempDir()
	a, fo := writeOne(t, Mbox, dir, "Subject: 1\n\none\n")
	a.Close()
	mbox := fo.st.(*mboxStore).path
	tail := "From someone@else Mon Jan  1 00:00:00 2024\nSubject: added by another program\n\nhi\n"
	f, _ := os.OpenFile(mbox, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(tail)
	f.Close()
	var logs bytes.Buffer
	a = mustOpen(t, Mbox, dir, Options{Logger: testLogger(&logs)})
	defer a.Close()
	fo, err := a.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	assertNothingUnindexed(t, fo)
	saved, _ := filepath.Glob(filepath.Join(dir, ".mailark", "lost+found", "*"))
	if len(saved) != 1 {
		t.Fatalf("lost+found: %v", saved)
	}
	if got, _ := os.ReadFile(saved[0]); string(got) != tail {
		t.Fatalf("saved tail %q", got)
	}
	if !strings.Contains(logs.String(), "moved it aside") {
		t.Errorf("no warning: %s", logs.String())
	}
}

func TestMboxRewrittenIsCorrupt(t *testing.T) {
	for name, change := range map[string]func(string){
		"truncated": func(p string) { os.Truncate(p, 10) },
		"shifted": func(p string) {
			data, _ := os.ReadFile(p)
			os.WriteFile(p, append([]byte("X-Inserted: by a mail client\n"), data...), 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a, fo := writeOne(t, Mbox, dir, "Subject: 1\n\none\n", "Subject: 2\n\ntwo\n")
			a.Close()
			change(fo.st.(*mboxStore).path)
			before, _ := os.ReadFile(fo.st.(*mboxStore).path)
			a = mustOpen(t, Mbox, dir, Options{})
			defer a.Close()
			if _, err := a.Folder("INBOX"); !errors.Is(err, ErrCorrupt) || !errors.Is(err, mailerr.ErrDamaged) {
				t.Fatalf("Folder: %v", err)
			}
			if after, _ := os.ReadFile(fo.st.(*mboxStore).path); !bytes.Equal(before, after) {
				t.Fatalf("a damaged mbox was changed by Open")
			}
		})
	}
}

func TestMaildirRepair(t *testing.T) {
	dir := t.TempDir()
	a, fo := writeOne(t, Maildir, dir, "Subject: 1\n\none\n", "Subject: 2\n\ntwo\n")
	s := fo.st.(*maildirStore)
	keys := fo.Entries()
	// An uncommitted message of ours, a leftover in tmp/, a foreign
	// message, and a committed message whose flags were renamed but not
	// committed.
	stray := mustAppend(t, fo, []byte("Subject: stray\n\n"), AppendInfo{})
	if err := fo.SetFlags(keys[0].Key, []string{`\Flagged`}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.dir, "tmp", "123.M1P2Q3Raaaaaaaa.host"), []byte("partial"), 0o600)
	foreign := filepath.Join(s.dir, "new", "1700000000.M1P2.otherhost")
	os.WriteFile(foreign, []byte("Subject: delivered by someone else\n\n"), 0o600)
	a.lock.Unlock() // crash: no rollback

	var logs bytes.Buffer
	a = mustOpen(t, Maildir, dir, Options{Logger: testLogger(&logs)})
	defer a.Close()
	fo, err := a.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	s = fo.st.(*maildirStore)
	if _, ok := s.files[stray.Key]; ok {
		t.Errorf("uncommitted message kept")
	}
	if names, _ := readDirNames(filepath.Join(s.dir, "tmp")); len(names) != 0 {
		t.Errorf("tmp/ not cleared: %v", names)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
	if !strings.Contains(logs.String(), "files not written by mailark are ignored") {
		t.Errorf("no warning about the foreign file: %s", logs.String())
	}
	if rel := s.files[keys[0].Key]; !strings.HasSuffix(rel, ":2,") {
		t.Errorf("uncommitted flag change not undone: %s", rel)
	}
	if n := len(fo.Entries()); n != 2 {
		t.Errorf("%d entries", n)
	}
	// A committed message deleted by another program is reported and
	// treated as absent, so a later fetch can bring it back.
	os.Remove(filepath.Join(s.dir, s.files[keys[1].Key]))
	a.Close()
	logs.Reset()
	a = mustOpen(t, Maildir, dir, Options{Logger: testLogger(&logs)})
	fo, err = a.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if es := fo.Entries(); len(es) != 1 || es[0].Key != keys[0].Key {
		t.Errorf("entries after deletion: %v", es)
	}
	if got := fo.BySHA256(keys[1].SHA256); len(got) != 0 {
		t.Errorf("deleted message still found by digest")
	}
	if !strings.Contains(logs.String(), "missing from disk") {
		t.Errorf("no warning about the missing file: %s", logs.String())
	}
}

func TestCloseDropsUncommitted(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a, fo := writeOne(t, f, dir, "Subject: 1\n\none\n")
		mustAppend(t, fo, []byte("Subject: 2\n\ntwo\n"), AppendInfo{})
		fo.SetState(SyncState{LastUID: 99})
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		a = mustOpen(t, f, dir, Options{ReadOnly: true})
		defer a.Close()
		fo, _ = a.Folder("INBOX")
		if n := len(fo.Entries()); n != 1 || fo.State().LastUID != 0 {
			t.Fatalf("after Close without Commit: %d entries, state %+v", n, fo.State())
		}
		assertNothingUnindexed(t, fo)
	})
}

func TestVerifyingReaderCatchesDamage(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a, fo := writeOne(t, f, dir, "Subject: 1\n\none\n")
		defer a.Close()
		m := fo.Entries()[0]
		var p string
		if s, ok := fo.st.(*maildirStore); ok {
			p = filepath.Join(s.dir, s.files[m.Key])
		} else {
			p = fo.st.(*mboxStore).path
		}
		data, _ := os.ReadFile(p)
		i := bytes.Index(data, []byte("one"))
		data[i] = 'X'
		os.WriteFile(p, data, 0o600)
		rc, err := fo.Open(m.Key)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := bytes.NewBuffer(nil).ReadFrom(rc); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("reading a changed message: %v", err)
		}
	})
}

func TestOpenRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("bad spec", func(t *testing.T) {
		for _, s := range []string{"", "maildir:", "tar:/x", "/just/a/path"} {
			if _, err := Open(ctx, s, Options{}); !errors.Is(err, ErrBadSpec) || mailerr.ExitCode(err) != mailerr.ExitUsage {
				t.Errorf("Open(%q): %v", s, err)
			}
		}
	})
	t.Run("format mismatch", func(t *testing.T) {
		dir := t.TempDir()
		mustOpen(t, Maildir, dir, Options{}).Close()
		_, err := Open(ctx, spec(Mbox, dir), Options{})
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), "is a maildir archive") {
			t.Errorf("%v", err)
		}
	})
	t.Run("non-empty directory", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
		_, err := Open(ctx, spec(Maildir, dir), Options{})
		if !errors.Is(err, ErrNotArchive) {
			t.Errorf("%v", err)
		}
		if names, _ := readDirNames(dir); len(names) != 1 {
			t.Errorf("Open wrote into a foreign directory: %v", names)
		}
	})
	t.Run("read-only missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nothing")
		_, err := Open(ctx, spec(Mbox, dir), Options{ReadOnly: true})
		if !errors.Is(err, ErrNotArchive) {
			t.Errorf("%v", err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("read-only Open created the archive")
		}
	})
	t.Run("read-only refuses writes", func(t *testing.T) {
		dir := t.TempDir()
		a, _ := writeOne(t, Mbox, dir, "Subject: 1\n\n")
		a.Close()
		a = mustOpen(t, Mbox, dir, Options{ReadOnly: true})
		defer a.Close()
		fo, _ := a.Folder("INBOX")
		if _, err := fo.Append(strings.NewReader("x"), AppendInfo{}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Append: %v", err)
		}
		if _, err := a.CreateFolder("New", ""); !errors.Is(err, ErrReadOnly) {
			t.Errorf("CreateFolder: %v", err)
		}
		if err := fo.Commit(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Commit: %v", err)
		}
	})
	t.Run("no folder", func(t *testing.T) {
		a := mustOpen(t, Maildir, t.TempDir(), Options{})
		defer a.Close()
		mustCreate(t, a, "a/b")
		for _, n := range []string{"missing", "a"} {
			if _, err := a.Folder(n); !errors.Is(err, ErrNoFolder) {
				t.Errorf("Folder(%q): %v", n, err)
			}
		}
	})
}

func TestAppendReadErrorLeavesNothing(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a, fo := writeOne(t, f, dir, "Subject: 1\n\none\n")
		defer a.Close()
		src := &failingReader{data: bytes.Repeat([]byte("line\n"), 50000)}
		if _, err := fo.Append(src, AppendInfo{}); err == nil {
			t.Fatal("Append succeeded with a failing reader")
		}
		m := mustAppend(t, fo, []byte("Subject: 2\n\ntwo\n"), AppendInfo{})
		mustCommit(t, fo)
		assertNothingUnindexed(t, fo)
		if got := readMessage(t, fo, m.Key); string(got) != "Subject: 2\n\ntwo\n" {
			t.Fatalf("message after a failed append: %q", got)
		}
	})
}

// failingReader returns data and then an error, as a dropped connection.
type failingReader struct {
	data []byte
	off  int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, errors.New("connection reset")
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}
