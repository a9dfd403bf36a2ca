package archive

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPermissions(t *testing.T) {
	old := syscall.Umask(0) // the most permissive umask: modes must still be 0600/0700
	defer syscall.Umask(old)
	eachFormat(t, func(t *testing.T, f Format) {
		dir := filepath.Join(t.TempDir(), "archive")
		a := mustOpen(t, f, dir, Options{})
		for _, name := range []string{"INBOX", "a/b/c", "Sent"} {
			fo := mustCreate(t, a, name)
			mustAppend(t, fo, []byte("Subject: x\n\n"), AppendInfo{Flags: []string{"kw"}})
			fo.SetState(SyncState{LastUID: 1})
			mustCommit(t, fo)
		}
		l, err := a.Ledger("imaps://u@example.org")
		if err != nil {
			t.Fatal(err)
		}
		l.Record(LedgerEntry{Folder: "INBOX", Key: "k", SHA256: "s"})
		l.Close()
		a.Close()
		for p, mode := range walkTree(t, dir) {
			want := os.FileMode(0o600)
			if mode.IsDir() {
				want = 0o700
			}
			if mode.Perm() != want {
				t.Errorf("%s has mode %04o, want %04o", p, mode.Perm(), want)
			}
		}
		// An archive others can read gets a warning on open.
		os.Chmod(dir, 0o755)
		var logs bytes.Buffer
		a = mustOpen(t, f, dir, Options{ReadOnly: true, Logger: testLogger(&logs)})
		a.Close()
		if !strings.Contains(logs.String(), "readable by other users") || !strings.Contains(logs.String(), "chmod -R go-rwx") {
			t.Errorf("no warning for a 0755 root: %q", logs.String())
		}
	})
}

func TestStateRoundTrip(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		fo := mustCreate(t, a, "INBOX")
		want := SyncState{
			Source: "imaps://user@example.org", ServerName: "Entw\u00fcrfe/\xff raw", Delimiter: "/",
			UIDValidity: 1700000001, LastUID: 4242, HighestModSeq: 1 << 40,
			LastSync: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), Gone: true,
			UIDLAliases: map[string]string{"new-\xfe": "old-key", "a": "b"},
		}
		fo.SetState(want)
		if got := fo.State(); !reflect.DeepEqual(got, want) {
			t.Errorf("staged state %+v", got)
		}
		mustCommit(t, fo)
		a.Close()
		a = mustOpen(t, f, dir, Options{ReadOnly: true})
		defer a.Close()
		fo, _ = a.Folder("INBOX")
		if got := fo.State(); !reflect.DeepEqual(got, want) {
			t.Errorf("state after reopen\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestSpecialUseAndInfo(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		sent, err := a.CreateFolder("Sent Items", SpecialSent)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, sent, []byte("Subject: s\n\n12345"), AppendInfo{})
		mustCommit(t, sent)
		mustCreate(t, a, "Archive/2024")
		arch, _ := a.Folder("Archive/2024")
		arch.SetSpecialUse(SpecialArchive)
		a.Close()
		a = mustOpen(t, f, dir, Options{ReadOnly: true})
		defer a.Close()
		infos, err := a.Folders()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]FolderInfo{}
		for _, i := range infos {
			got[i.Name] = i
		}
		if i := got["Sent Items"]; i.SpecialUse != SpecialSent || i.Messages != 1 || i.Bytes != 17 || i.NoSelect {
			t.Errorf("Sent Items: %+v", i)
		}
		if i := got["Archive/2024"]; i.SpecialUse != SpecialArchive {
			t.Errorf("Archive/2024: %+v", i)
		}
		if i := got["Archive"]; !i.NoSelect {
			t.Errorf("parent Archive: %+v", i)
		}
		wantPath := map[Format]string{Maildir: "Archive/2024", Mbox: "Archive.sbd/2024"}[f]
		if p := got["Archive/2024"].Path; p != wantPath {
			t.Errorf("path %q, want %q", p, wantPath)
		}
	})
}

func TestLookups(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		fo := mustCreate(t, a, "INBOX")
		same := []byte("Message-ID: <dup@x>\r\n\r\nsame bytes\r\n")
		m1 := mustAppend(t, fo, same, AppendInfo{UID: 1})
		m2 := mustAppend(t, fo, same, AppendInfo{UID: 2}) // copies are counted, not collapsed
		m3 := mustAppend(t, fo, []byte("Message-ID: <dup@x>\r\n\r\nother bytes\r\n"), AppendInfo{UIDL: "pop-1"})
		m4 := mustAppend(t, fo, []byte("Message-Id:   <x y@z>  \r\nSubject: bad id\r\n\r\n"), AppendInfo{UIDL: "pop-\xff"})
		if got := fo.BySHA256(m1.SHA256); len(got) != 0 {
			t.Errorf("uncommitted message visible to lookups")
		}
		mustCommit(t, fo)
		a.Close()
		a = mustOpen(t, f, dir, Options{ReadOnly: true})
		defer a.Close()
		fo, _ = a.Folder("INBOX")
		keys := func(ms []Meta) []string {
			var out []string
			for _, m := range ms {
				out = append(out, m.Key)
			}
			return out
		}
		if got := keys(fo.BySHA256(m1.SHA256)); !slices.Equal(got, []string{m1.Key, m2.Key}) {
			t.Errorf("BySHA256: %v", got)
		}
		if got := keys(fo.BySHA256(strings.ToUpper(m1.SHA256))); len(got) != 2 {
			t.Errorf("BySHA256 upper case: %v", got)
		}
		if got := keys(fo.ByMessageID("<dup@x>")); !slices.Equal(got, []string{m1.Key, m2.Key, m3.Key}) {
			t.Errorf("ByMessageID: %v", got)
		}
		if got := keys(fo.ByMessageID("<x y@z>")); !slices.Equal(got, []string{m4.Key}) {
			t.Errorf("ByMessageID of a malformed id: %v", got)
		}
		if m, ok := fo.ByUID(2); !ok || m.Key != m2.Key {
			t.Errorf("ByUID(2): %v %v", m, ok)
		}
		if m, ok := fo.ByUIDL("pop-\xff"); !ok || m.Key != m4.Key {
			t.Errorf("ByUIDL of a non-UTF-8 UIDL: %v %v", m, ok)
		}
		if _, ok := fo.ByUIDL("pop-2"); ok {
			t.Errorf("ByUIDL found a missing UIDL")
		}
		if fo.ByMessageID("") != nil || fo.BySHA256("zz") != nil {
			t.Errorf("empty/invalid lookups found something")
		}
	})
}

func TestHeaderParsing(t *testing.T) {
	recv := time.Date(2021, 2, 3, 4, 5, 6, 0, time.FixedZone("", 3600))
	for _, c := range []struct {
		name, msg, mid string
		date           time.Time
	}{
		{"plain", "Message-ID: <a@b>\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\n\r\nbody", "<a@b>", time.Date(2003, 7, 1, 10, 52, 37, 0, time.FixedZone("", 7200))},
		{"received wins", "Received: from x by y; Wed, 3 Feb 2021 04:05:06 +0100\r\nReceived: from older; Mon, 1 Feb 2021 00:00:00 +0000\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\nMessage-Id:  <r@b> \r\n\r\n", "<r@b>", recv},
		{"folded id", "Message-ID:\r\n <folded@b>\r\n\r\n", "<folded@b>", time.Time{}},
		{"lower case", "message-id: no-brackets@example.org\n\n", "no-brackets@example.org", time.Time{}},
		{"mbox From first", "From x@y Mon Jan  1 00:00:00 2024\nMessage-ID: <f@b>\n\n", "<f@b>", time.Time{}},
		{"malformed line", "Subject: ok\nthis line has no colon\nMessage-ID: <m@b>\n\n", "<m@b>", time.Time{}},
		{"no header end", "Message-ID: <n@b>\r\nSubject: cut", "<n@b>", time.Time{}},
		{"none", "Subject: x\n\nMessage-ID: <in-body@b>\n", "", time.Time{}},
		{"empty", "", "", time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := parseHead([]byte(c.msg))
			if h.messageID != c.mid || !h.date.Equal(c.date) {
				t.Errorf("got %q %v, want %q %v", h.messageID, h.date, c.mid, c.date)
			}
		})
	}
}

func TestAppendDateDefaults(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		a := mustOpen(t, f, t.TempDir(), Options{})
		defer a.Close()
		fo := mustCreate(t, a, "INBOX")
		m := mustAppend(t, fo, []byte("Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n\r\n"), AppendInfo{})
		if want := "2003-07-01T10:52:37+02:00"; m.Date.Format(time.RFC3339) != want {
			t.Errorf("date from header %v", m.Date)
		}
		before := time.Now().Add(-time.Second)
		m = mustAppend(t, fo, []byte("Subject: no date\r\n\r\n"), AppendInfo{})
		if m.Date.Before(before) || m.Date.After(time.Now()) {
			t.Errorf("date without header %v", m.Date)
		}
		mustCommit(t, fo)
		if s, ok := fo.st.(*maildirStore); ok {
			st, _ := os.Stat(filepath.Join(s.dir, s.files[fo.Entries()[0].Key]))
			if !st.ModTime().Equal(time.Date(2003, 7, 1, 8, 52, 37, 0, time.UTC)) {
				t.Errorf("maildir mtime %v is not INTERNALDATE", st.ModTime())
			}
		}
	})
}

func TestMaildirFileNames(t *testing.T) {
	a := mustOpen(t, Maildir, t.TempDir(), Options{})
	defer a.Close()
	fo := mustCreate(t, a, "INBOX")
	flags := []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, "$Forwarded", "Junk", "$label1", "bad\\kw"}
	for i := range 28 {
		flags = append(flags, "k"+strings.Repeat("x", i))
	}
	m := mustAppend(t, fo, []byte("Subject: x\n\n"), AppendInfo{Flags: flags})
	mustCommit(t, fo)
	s := fo.st.(*maildirStore)
	name := filepath.Base(s.files[m.Key])
	want := m.Key + ",S=12:2,DFPRSTabcdefghijklmnopqrstuvwxyz" // a is $Forwarded
	if name != want {
		t.Errorf("file name %q, want %q", name, want)
	}
	if !ourKey.MatchString(m.Key) || strings.ContainsAny(m.Key, ",:/") {
		t.Errorf("key %q", m.Key)
	}
	kw, _ := os.ReadFile(filepath.Join(s.dir, "dovecot-keywords"))
	if lines := strings.Split(strings.TrimSpace(string(kw)), "\n"); len(lines) != 26 || lines[0] != "0 $Forwarded" || lines[1] != "1 $label1" {
		t.Errorf("dovecot-keywords: %q", kw)
	}
	// The index keeps every flag, including those without a letter.
	if got := fo.Entries()[0].Flags; len(got) != len(flags) {
		t.Errorf("index kept %d of %d flags: %v", len(got), len(flags), got)
	}
	// SetFlags renames the file at once and is committed to the index.
	if err := fo.SetFlags(m.Key, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(s.files[m.Key]); got != m.Key+",S=12:2,S" {
		t.Errorf("after SetFlags: %q", got)
	}
	mustCommit(t, fo)
	if got := fo.Entries()[0].Flags; !slices.Equal(got, []string{`\Seen`}) {
		t.Errorf("index flags %v", got)
	}
}

func TestMboxStatusLines(t *testing.T) {
	pad := strings.Repeat(" ", statusSlack)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{nil, "Status: O\nX-Status: \nX-Keywords: " + pad + "\n"},
		{[]string{`\Seen`}, "Status: RO\nX-Status: \nX-Keywords: " + pad + "\n"},
		{[]string{`\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`, "$Forwarded", "Junk", "bad(kw"}, "Status: RO\nX-Status: ADTF\nX-Keywords: $Forwarded Junk" + pad + "\n"},
	} {
		if got := statusLines(c.flags); got != c.want {
			t.Errorf("%v: %q, want %q", c.flags, got, c.want)
		}
	}
	if got := fromLine(testDate); got != "From MAILER-DAEMON Sat Mar  9 11:34:05 2024 +0000\n" {
		t.Errorf("From line %q", got)
	}
	// A flag change is written in place, at the same length, after Commit.
	dir := t.TempDir()
	a := mustOpen(t, Mbox, dir, Options{})
	defer a.Close()
	fo := mustCreate(t, a, "INBOX")
	m1 := mustAppend(t, fo, []byte("Subject: 1\n\none\n"), AppendInfo{Flags: []string{"Junk"}})
	m2 := mustAppend(t, fo, []byte("Subject: 2\n\ntwo\n"), AppendInfo{})
	mustCommit(t, fo)
	path := fo.st.(*mboxStore).path
	before, _ := os.ReadFile(path)
	if err := fo.SetFlags(m2.Key, []string{`\Seen`, `\Flagged`, "NewKeyword"}); err != nil {
		t.Fatal(err)
	}
	if mid, _ := os.ReadFile(path); !bytes.Equal(mid, before) {
		t.Fatalf("mbox changed before Commit")
	}
	mustCommit(t, fo)
	after, _ := os.ReadFile(path)
	if len(after) != len(before) {
		t.Fatalf("mbox length changed: %d -> %d", len(before), len(after))
	}
	if !strings.Contains(string(after), "Status: RO\nX-Status: F\nX-Keywords: NewKeyword ") {
		t.Errorf("status lines not rewritten:\n%s", after)
	}
	if got := readMessage(t, fo, m2.Key); string(got) != "Subject: 2\n\ntwo\n" {
		t.Errorf("message changed: %q", got)
	}
	if got := readMessage(t, fo, m1.Key); string(got) != "Subject: 1\n\none\n" {
		t.Errorf("message changed: %q", got)
	}
	// Too many keywords for the room left: the index has them, the file
	// keeps its length.
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("Keyword%02d", i))
	}
	if err := fo.SetFlags(m1.Key, many); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, fo)
	if again, _ := os.ReadFile(path); len(again) != len(before) {
		t.Fatalf("mbox length changed")
	}
	if got := fo.Entries()[0].Flags; len(got) != 20 {
		t.Errorf("index flags %v", got)
	}
}

// Folders are written in parallel by fetch; the archive must allow it.
func TestParallelFolders(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		errs := make(chan error, 8)
		for w := range 8 {
			go func() {
				_, err := a.CreateFolder(fmt.Sprintf("F%d/sub", w%4), "")
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 4)
		for w := range 4 {
			go func() {
				fo, err := a.Folder(fmt.Sprintf("F%d/sub", w))
				if err != nil {
					done <- err
					return
				}
				for i := range 50 {
					if _, err := fo.Append(strings.NewReader(fmt.Sprintf("Subject: %d/%d\r\n\r\nx\r\n", w, i)), AppendInfo{UID: uint32(i + 1)}); err != nil {
						done <- err
						return
					}
					if i%10 == 9 {
						if err := fo.Commit(); err != nil {
							done <- err
							return
						}
					}
				}
				done <- nil
			}()
		}
		go a.Folders() // a reader (ls) at the same time
		for range 4 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		a = mustOpen(t, f, dir, Options{ReadOnly: true})
		defer a.Close()
		for w := range 4 {
			fo, err := a.Folder(fmt.Sprintf("F%d/sub", w))
			if err != nil || len(fo.Entries()) != 50 {
				t.Fatalf("F%d/sub: %v", w, err)
			}
		}
	})
}
