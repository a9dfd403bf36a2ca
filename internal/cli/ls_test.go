package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
)

// makeArchive writes a small mailark archive with the real archive package.
func makeArchive(t *testing.T, spec string) {
	t.Helper()
	a, err := archive.Open(context.Background(), spec, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	synced := time.Date(2025, 3, 1, 3, 17, 0, 0, time.UTC)
	for _, f := range []struct {
		name, use string
		n         int
	}{{"INBOX", "", 3}, {"Sent", archive.SpecialSent, 2}, {"Entwürfe/Ünter", "", 1}} {
		fo, err := a.CreateFolder(f.name, f.use)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < f.n; i++ {
			msg := fmt.Sprintf("Message-ID: <%s-%d@x>\r\nSubject: %d\r\n\r\nbody\r\n", f.name, i, i)
			if _, err := fo.Append(strings.NewReader(msg), archive.AppendInfo{UID: uint32(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		fo.SetState(archive.SyncState{Source: "imaps://me@host:993", ServerName: f.name, UIDValidity: 7, LastUID: uint32(f.n), LastSync: synced})
		if err := fo.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLsOwnArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "arch")
	makeArchive(t, "maildir:"+dir)
	r := runCLI(t, nil, false, "ls", "maildir:"+dir)
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{"maildir:" + dir + " (maildir)", "FOLDER", "LAST SYNC", "Entwürfe/Ünter", `\Sent`, "imaps://me@host:993", "total: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ls output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, time.Date(2025, 3, 1, 3, 17, 0, 0, time.UTC).Local().Format(time.DateTime)) {
		t.Errorf("last sync time missing:\n%s", r.stdout)
	}
	// A bare path to a mailark archive works too; --json has the details.
	r = runCLI(t, nil, false, "ls", "--json", dir)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var l Listing
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	counts := map[string]int{}
	for _, f := range l.Folders {
		counts[f.Name] = f.Messages
		if f.Name == "Sent" && (f.SpecialUse != `\Sent` || len(f.Sync) != 1 || f.Sync[0].LastUID != 2 || f.Sync[0].UIDValidity != 7) {
			t.Errorf("Sent: %+v", f)
		}
	}
	if l.Foreign || l.Format != "maildir" || counts["INBOX"] != 3 || counts["Sent"] != 2 || counts["Entwürfe/Ünter"] != 1 {
		t.Errorf("listing: %+v", l)
	}
}

func TestLsForeignMaildir(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o700)
	}
	os.WriteFile(filepath.Join(root, "cur", "1.host:2,S"), []byte("Subject: a\n\nx\n"), 0o600)
	os.WriteFile(filepath.Join(root, "new", "2.host"), []byte("Subject: b\n\ny\n"), 0o600)
	os.WriteFile(filepath.Join(root, ".Sent", "cur", "3.host:2,S"), []byte("Subject: c\n\nz\n"), 0o600)
	r := runCLI(t, nil, false, "ls", root)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stdout, "not a mailark archive: counts only") || strings.Contains(r.stdout, "LAST SYNC") {
		t.Errorf("foreign ls:\n%s", r.stdout)
	}
	r = runCLI(t, nil, false, "ls", "--json", root)
	var l Listing
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, f := range l.Folders {
		counts[f.Name] = f.Messages
	}
	if !l.Foreign || counts["INBOX"] != 2 || counts["Sent"] != 1 {
		t.Errorf("foreign listing: %+v", l)
	}
	// maildir:PATH of a tree mailark did not write is read the same way.
	if r := runCLI(t, nil, false, "ls", "maildir:"+root); r.err != nil || !strings.Contains(r.stdout, "counts only") {
		t.Errorf("maildir: prefix on a foreign tree: %v %s", r.err, r.stdout)
	}
}

func TestLsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	r := runCLI(t, nil, false, "ls", "maildir:"+missing)
	if r.code != mailerr.ExitUsage || !strings.Contains(r.err.Error(), "does not exist") {
		t.Errorf("missing archive: code %d err %v", r.code, r.err)
	}
	r = runCLI(t, nil, false, "ls", missing)
	if r.code != mailerr.ExitUsage {
		t.Errorf("missing path: code %d err %v", r.code, r.err)
	}
}
