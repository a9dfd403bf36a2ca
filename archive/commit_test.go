package archive

import (
	"errors"
	"slices"
	"sort"
	"testing"
)

// syncHookStore runs hook in the slow, unlocked part of every Commit's
// sync, in place of (or before) the real sync.
type syncHookStore struct {
	store
	hook func() error
}

func (s *syncHookStore) startSync() (func() error, func(bool), error) {
	run, finish, err := s.store.startSync()
	if err != nil || run == nil {
		return run, finish, err
	}
	return func() error {
		if err := s.hook(); err != nil {
			return err
		}
		return run()
	}, finish, nil
}

func subjects(t *testing.T, fo *Folder) []string {
	t.Helper()
	var out []string
	for _, m := range fo.Entries() {
		out = append(out, string(readMessage(t, fo, m.Key)))
	}
	sort.Strings(out)
	return out
}

// A message appended while a Commit syncs is not blocked by it (the hook
// runs on the committing goroutine: with the folder locked through the
// sync this would deadlock), is not part of that Commit, and is part of
// the next.
func TestAppendDuringCommit(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		fo := mustCreate(t, a, "INBOX")
		mustAppend(t, fo, []byte("Subject: 1\n\none\n"), AppendInfo{UID: 1})
		appended := false
		fo.st = &syncHookStore{store: fo.st, hook: func() error {
			if !appended {
				appended = true
				mustAppend(t, fo, []byte("Subject: 2\n\ntwo\n"), AppendInfo{UID: 2})
			}
			return nil
		}}
		mustCommit(t, fo)
		if got := subjects(t, fo); len(got) != 1 || got[0] != "Subject: 1\n\none\n" {
			t.Fatalf("after the first commit: %q", got)
		}
		if _, ok := fo.ByUID(2); ok {
			t.Fatal("the message appended during the commit counts already")
		}
		mustCommit(t, fo)
		if got := subjects(t, fo); len(got) != 2 {
			t.Fatalf("after the second commit: %q", got)
		}
		a.Close()

		a = mustOpen(t, f, dir, Options{})
		defer a.Close()
		fo = mustFolder(t, a, "INBOX")
		if got := subjects(t, fo); len(got) != 2 || got[0] != "Subject: 1\n\none\n" || got[1] != "Subject: 2\n\ntwo\n" {
			t.Fatalf("after reopening: %q", got)
		}
		assertNothingUnindexed(t, fo)
	})
}

// A Commit whose sync fails commits nothing, and keeps everything staged
// (what it covered and what was appended meanwhile): a later Commit makes
// it all durable, and Close without one removes it all.
func TestFailedCommitKeepsStaged(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		for _, retry := range []bool{true, false} {
			dir := t.TempDir()
			a := mustOpen(t, f, dir, Options{})
			fo := mustCreate(t, a, "INBOX")
			mustCommit(t, fo)
			real := fo.st
			mustAppend(t, fo, []byte("Subject: 1\n\none\n"), AppendInfo{UID: 1})
			fo.SetState(SyncState{LastUID: 1})
			fo.st = &syncHookStore{store: real, hook: func() error {
				mustAppend(t, fo, []byte("Subject: 2\n\ntwo\n"), AppendInfo{UID: 2})
				return errors.New("disk on fire")
			}}
			if err := fo.Commit(); err == nil {
				t.Fatal("commit with a failing sync succeeded")
			}
			if n := len(fo.Entries()); n != 0 {
				t.Fatalf("a failed commit left %d messages counted", n)
			}
			fo.st = real
			if retry {
				mustCommit(t, fo)
				if got := subjects(t, fo); len(got) != 2 {
					t.Fatalf("retried commit: %q", got)
				}
			}
			a.Close()

			a = mustOpen(t, f, dir, Options{})
			fo = mustFolder(t, a, "INBOX")
			want, wantUID := 0, uint32(0)
			if retry {
				want, wantUID = 2, 1
			}
			if n := len(fo.Entries()); n != want {
				t.Errorf("retry %v: %d messages after reopening, want %d", retry, n, want)
			}
			if got := fo.State().LastUID; got != wantUID {
				t.Errorf("retry %v: LastUID %d, want %d", retry, got, wantUID)
			}
			assertNothingUnindexed(t, fo)
			a.Close()
		}
	})
}

// A folder recorded with AddFolder and never loaded (a run killed before
// it got to it) reads as empty, and is created whole by the next writer.
func TestAddedFolderNeverLoaded(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		if err := a.AddFolder("Later/Deep", ""); err != nil {
			t.Fatal(err)
		}
		a.Close()

		ro := mustOpen(t, f, dir, Options{ReadOnly: true})
		infos, err := ro.Folders()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, fi := range infos {
			if fi.Name == "Later/Deep" {
				found = fi.Messages == 0
			}
		}
		if msgs, err := ro.Messages("Later/Deep"); !found || err != nil || len(msgs) != 0 {
			t.Errorf("read-only view: listed %v, messages %v, %v", found, msgs, err)
		}
		ro.Close()

		a = mustOpen(t, f, dir, Options{})
		defer a.Close()
		fo := mustFolder(t, a, "Later/Deep")
		m := mustAppend(t, fo, []byte("Subject: 1\n\none\n"), AppendInfo{})
		mustCommit(t, fo)
		if got := readMessage(t, fo, m.Key); string(got) != "Subject: 1\n\none\n" {
			t.Errorf("message %q", got)
		}
	})
}

// AddFolders records every folder it can in one write of the folder list;
// a name the archive cannot hold fails alone.
func TestAddFoldersRecordsAllButTheBadName(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		errs := a.AddFolders([]FolderSpec{{Name: "INBOX"}, {Name: ""}, {Name: "Sent", SpecialUse: `\Sent`}, {Name: "Lists/go"}})
		if errs[0] != nil || errs[2] != nil || errs[3] != nil || !errors.Is(errs[1], ErrBadName) {
			t.Fatalf("errors %v", errs)
		}
		a.Close()

		a = mustOpen(t, f, dir, Options{})
		defer a.Close()
		got := a.FolderNames()
		for _, want := range []string{"INBOX", "Sent", "Lists/go"} {
			if !slices.Contains(got, want) {
				t.Errorf("%q not recorded after reopening: %v", want, got)
			}
		}
		if rec, ok := a.record("Sent"); !ok || rec.SpecialUse != `\Sent` {
			t.Errorf("Sent recorded as %+v", rec)
		}
	})
}
