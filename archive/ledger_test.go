package archive

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

func TestLedgerPersistsAndToleratesTornLine(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, Maildir, dir, Options{})
	defer a.Close()
	target := "imaps://user@mail.example.org:993"
	l, err := a.Ledger(target)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := l.Record(
		LedgerEntry{Folder: "INBOX", Key: "k1", SHA256: "s1", TargetFolder: "INBOX", UIDValidity: 7, UID: 1, At: at},
		LedgerEntry{Folder: "Entw\xfcrfe", Key: "k2", SHA256: "s2", TargetFolder: "Drafts"},
	); err != nil {
		t.Fatal(err)
	}
	if !l.Has("INBOX", "k1", "s1") || l.Has("INBOX", "k1", "other") || l.Len() != 2 {
		t.Fatalf("Has after Record")
	}
	// A second Ledger on the same target is refused while this one is open.
	if _, err := a.Ledger(target); !errors.Is(err, mailerr.ErrLocked) {
		t.Errorf("second open of one ledger: %v", err)
	}
	l.Close()

	path := filepath.Join(dir, ".mailark", "ledgers", escapeComponent(target, Maildir)+".jsonl")
	data, err := os.ReadFile(path)
	if err != nil || strings.Count(string(data), "\n") != 2 {
		t.Fatalf("ledger file %s: %q %v", path, data, err)
	}
	// A crash in the middle of the next Record leaves a torn line.
	os.WriteFile(path, append(data, []byte(`{"folder":"INBOX","key":"k3","sha`)...), 0o600)

	l, err = a.Ledger(target)
	if err != nil {
		t.Fatalf("reopen with a torn line: %v", err)
	}
	if !l.Has("INBOX", "k1", "s1") || !l.Has("Entw\xfcrfe", "k2", "s2") || l.Has("INBOX", "k3", "") || l.Len() != 2 {
		t.Fatalf("entries after reopen")
	}
	if err := l.Record(LedgerEntry{Folder: "INBOX", Key: "k3", SHA256: "s3"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Has("INBOX", "k3", "s3") || l.Len() != 3 {
		t.Fatalf("record after a torn line lost")
	}
}

func TestLedgerOutsideArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledgers", "thunderbird-to-imap.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Record(LedgerEntry{Folder: "Inbox", Key: "0", SHA256: "x"})
	l.Close()
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o", st.Mode().Perm())
	}
	os.WriteFile(path, []byte("not json\n"), 0o600)
	if _, err := OpenLedger(path); !errors.Is(err, mailerr.ErrDamaged) {
		t.Errorf("damaged ledger: %v", err)
	}
}
