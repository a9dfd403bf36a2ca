package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

// damageIndexes appends a line that is not JSON to every folder's index:
// any later load of an index fails with "archive damaged", so a test can
// tell exactly which paths load one.
func damageIndexes(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, sideDirName, "folders", "*", "index.jsonl"))
	if len(files) == 0 {
		t.Fatal("no index files to damage")
	}
	for _, file := range files {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("this line is not an index record\n"); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

func TestFolderStateNeverLoadsTheIndex(t *testing.T) {
	eachFormat(t, func(t *testing.T, format Format) {
		dir := t.TempDir()
		a := mustOpen(t, format, dir, Options{})
		for _, name := range []string{"INBOX", "Work/2024"} {
			fo := mustCreate(t, a, name)
			for i := range 5 {
				mustAppend(t, fo, fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i), AppendInfo{UID: uint32(i + 1)})
			}
			fo.SetState(SyncState{Source: "imap://u@h", ServerName: name, UIDValidity: 9, LastUID: 5})
			mustCommit(t, fo)
		}
		a.Close()
		damageIndexes(t, dir)

		a = mustOpen(t, format, dir, Options{})
		defer a.Close()
		if got, want := fmt.Sprint(a.FolderNames()), "[INBOX Work/2024]"; got != want {
			t.Errorf("FolderNames = %s, want %s (Work is only a parent)", got, want)
		}
		st, err := a.FolderState("Work/2024")
		if err != nil || st.LastUID != 5 || st.UIDValidity != 9 || st.ServerName != "Work/2024" {
			t.Fatalf("FolderState = %+v, %v", st, err)
		}
		synced := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		st.LastSync = synced
		if err := a.SetFolderState("Work/2024", st); err != nil {
			t.Fatalf("SetFolderState: %v", err)
		}
		if err := a.SetSpecialUse("INBOX", SpecialArchive); err != nil {
			t.Fatalf("SetSpecialUse: %v", err)
		}
		for _, name := range []string{"Work", "Nope"} {
			if _, err := a.FolderState(name); !errors.Is(err, ErrNoFolder) {
				t.Errorf("FolderState(%q) = %v, want ErrNoFolder", name, err)
			}
		}
		// Every one of those went past the damaged indexes; a load does not.
		if _, err := a.Folder("Work/2024"); !errors.Is(err, mailerr.ErrDamaged) {
			t.Fatalf("Folder after damaging the index = %v, want damaged (the test's detector)", err)
		}
		if st, err := a.FolderState("Work/2024"); err != nil || !st.LastSync.Equal(synced) {
			t.Fatalf("state after SetFolderState = %+v, %v", st, err)
		}
	})
}

func TestFolderStateOfALoadedFolderIsItsState(t *testing.T) {
	eachFormat(t, func(t *testing.T, format Format) {
		dir := t.TempDir()
		a := mustOpen(t, format, dir, Options{})
		fo := mustCreate(t, a, "INBOX")
		fo.SetState(SyncState{UIDValidity: 3, LastUID: 1}) // staged, not committed
		if st, err := a.FolderState("INBOX"); err != nil || st.LastUID != 1 {
			t.Fatalf("FolderState of a loaded folder = %+v, %v; want its staged state", st, err)
		}
		m := mustAppend(t, fo, []byte("Subject: x\r\n\r\nx\r\n"), AppendInfo{UID: 2})
		// On a loaded folder SetFolderState is SetState + Commit: the
		// message it covers is committed with it.
		if err := a.SetFolderState("INBOX", SyncState{UIDValidity: 3, LastUID: 2}); err != nil {
			t.Fatal(err)
		}
		a.Close()

		a = mustOpen(t, format, dir, Options{ReadOnly: true})
		defer a.Close()
		if st, err := a.FolderState("INBOX"); err != nil || st.LastUID != 2 {
			t.Fatalf("state after reopening = %+v, %v", st, err)
		}
		if got, ok := mustFolder(t, a, "INBOX").ByUID(2); !ok || got.Key != m.Key {
			t.Fatalf("message committed by SetFolderState missing: %+v %v", got, ok)
		}
		if err := a.SetFolderState("INBOX", SyncState{}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("SetFolderState read-only = %v", err)
		}
	})
}

// A folder only touched through SetFolderState is still repaired when it
// is next loaded for writing: a message appended but never committed (a
// crashed run) is gone then, and the state written in between stands.
func TestSetFolderStateLeavesRepairToTheNextLoad(t *testing.T) {
	eachFormat(t, func(t *testing.T, format Format) {
		dir := t.TempDir()
		a := mustOpen(t, format, dir, Options{})
		fo := mustCreate(t, a, "INBOX")
		mustAppend(t, fo, []byte("Subject: kept\r\n\r\nkept\r\n"), AppendInfo{UID: 1})
		fo.SetState(SyncState{UIDValidity: 1, LastUID: 1})
		mustCommit(t, fo)
		a.Close()
		leftover := crashAfterAppend(t, format, dir, "INBOX", []byte("Subject: torn\r\n\r\nnever committed\r\n"))

		a = mustOpen(t, format, dir, Options{})
		if err := a.SetFolderState("INBOX", SyncState{UIDValidity: 1, LastUID: 1, LastSync: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if !leftover() {
			t.Fatal("the test's leftover is gone before any load; it proves nothing")
		}
		fo = mustFolder(t, a, "INBOX")
		if leftover() {
			t.Error("loading for writing did not remove the uncommitted message")
		}
		if n := len(fo.Entries()); n != 1 {
			t.Errorf("%d entries, want 1", n)
		}
		if st := fo.State(); st.LastSync.IsZero() {
			t.Error("state written by SetFolderState lost")
		}
		a.Close()
	})
}

func mustFolder(t *testing.T, a *Archive, name string) *Folder {
	t.Helper()
	fo, err := a.Folder(name)
	if err != nil {
		t.Fatalf("Folder %q: %v", name, err)
	}
	return fo
}

// crashAfterAppend leaves what a run killed between Append and Commit
// leaves: the message's data on disk, no index record. It returns a
// function telling whether that data is still there.
func crashAfterAppend(t *testing.T, format Format, dir, folder string, msg []byte) func() bool {
	t.Helper()
	a := mustOpen(t, format, dir, Options{})
	fo := mustFolder(t, a, folder)
	m := mustAppend(t, fo, msg, AppendInfo{UID: 99})
	if err := syncStore(fo.st); err != nil {
		t.Fatal(err)
	}
	// Drop the Folder without close(), which would roll the append back:
	// only the lock is released, as the kernel does for a killed process.
	fo.st.close()
	fo.ixf.close()
	a.lock.Unlock()
	path := filepath.Join(dir, filepath.FromSlash(fo.relPath))
	if format == Mbox {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		size := st.Size()
		return func() bool {
			st, err := os.Stat(path)
			return err == nil && st.Size() == size
		}
	}
	return func() bool {
		names, _ := filepath.Glob(filepath.Join(path, "cur", m.Key+"*"))
		return len(names) == 1
	}
}

func TestSetUIDRebindsAndSurvivesReopen(t *testing.T) {
	eachFormat(t, func(t *testing.T, format Format) {
		dir := t.TempDir()
		a := mustOpen(t, format, dir, Options{})
		fo := mustCreate(t, a, "INBOX")
		var keys []string
		for i := range 3 {
			keys = append(keys, mustAppend(t, fo, fmt.Appendf(nil, "Subject: %d\r\n\r\n%d\r\n", i, i), AppendInfo{UID: uint32(i + 1)}).Key)
		}
		mustCommit(t, fo)

		// The server renumbered: message 0 is now UID 7, message 1 took
		// message 0's old UID 1, message 2 is no longer there (UID 0).
		for _, set := range []struct {
			key string
			uid uint32
		}{{keys[0], 7}, {keys[1], 1}, {keys[2], 0}} {
			if err := fo.SetUID(set.key, set.uid); err != nil {
				t.Fatal(err)
			}
		}
		if m, ok := fo.ByUID(7); ok {
			t.Errorf("ByUID(7) before Commit = %+v; staged UIDs must not show", m)
		}
		mustCommit(t, fo)
		check := func(fo *Folder) {
			t.Helper()
			want := map[uint32]string{7: keys[0], 1: keys[1], 2: "", 3: ""}
			for uid, key := range want {
				m, ok := fo.ByUID(uid)
				if ok != (key != "") || (ok && m.Key != key) {
					t.Errorf("ByUID(%d) = %q %v, want %q", uid, m.Key, ok, key)
				}
			}
			for _, e := range fo.Entries() {
				if e.Key == keys[2] && e.UID != 0 {
					t.Errorf("unbound message still has UID %d", e.UID)
				}
			}
		}
		check(fo)
		if err := fo.SetUID("no-such-key", 4); !errors.Is(err, ErrNoMessage) {
			t.Errorf("SetUID of an unknown key = %v", err)
		}
		// A rebinding dropped before its Commit (a crash) is not applied.
		if err := fo.SetUID(keys[0], 42); err != nil {
			t.Fatal(err)
		}
		a.Close()

		a = mustOpen(t, format, dir, Options{})
		defer a.Close()
		check(mustFolder(t, a, "INBOX"))
	})
}

// Setting a UID back within one Commit (7, then the UID it has) must
// end with the UID it has, not the intermediate one.
func TestSetUIDBackAndForthBeforeCommit(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, Maildir, dir, Options{})
	defer a.Close()
	fo := mustCreate(t, a, "INBOX")
	m := mustAppend(t, fo, []byte("Subject: a\r\n\r\na\r\n"), AppendInfo{UID: 5})
	if err := fo.SetUID(m.Key, 6); err != nil { // staged add: rewritten in place
		t.Fatal(err)
	}
	mustCommit(t, fo)
	for _, uid := range []uint32{7, 6} {
		if err := fo.SetUID(m.Key, uid); err != nil {
			t.Fatal(err)
		}
	}
	mustCommit(t, fo)
	if got, ok := fo.ByUID(6); !ok || got.Key != m.Key {
		t.Errorf("ByUID(6) = %+v %v", got, ok)
	}
	if _, ok := fo.ByUID(7); ok {
		t.Error("intermediate UID 7 still bound")
	}
}
