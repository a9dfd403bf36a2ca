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

	"github.com/rivo/uniseg"

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

// Columns line up on screen whatever the folder names: accented letters
// precomposed or combining, Cyrillic, double-width CJK, parents without
// counts, and sizes of different lengths.
func TestLsColumnsAlignWithNonASCIINames(t *testing.T) {
	synced := time.Date(2025, 3, 1, 3, 17, 0, 0, time.UTC)
	sync := []SourceSync{{Source: "imaps://me@host:993", LastSync: synced}}
	l := Listing{Archive: "maildir:/m", Format: "maildir", Folders: []ListFolder{
		{Name: "INBOX", Messages: 7, Bytes: 85197, Sync: sync},
		{Name: "Reisen", NoSelect: true},
		{Name: "Reisen/Zürich", Messages: 1, Bytes: 340, Sync: sync},
		{Name: "Reisen/Zu\u0308rich", Messages: 12, Bytes: 2 << 20, Sync: sync},
		{Name: "Архив", SpecialUse: archive.SpecialArchive, Messages: 1, Bytes: 439, Sync: sync},
		{Name: "日本語/メール", Messages: 100, Bytes: 1, Sync: sync},
	}}
	var out strings.Builder
	if err := writeListing(&out, l); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	// column is where s starts in line, in terminal columns.
	column := func(line, s string) int {
		i := strings.Index(line, s)
		if i < 0 {
			t.Fatalf("%q not in line %q", s, line)
		}
		return uniseg.StringWidth(line[:i])
	}
	header := lines[1]
	when := synced.Local().Format(time.DateTime)
	for i, f := range l.Folders {
		line := lines[2+i]
		if strings.HasSuffix(line, " ") {
			t.Errorf("line ends in blanks: %q", line)
		}
		if f.NoSelect {
			continue
		}
		for _, c := range []struct{ title, cell string }{
			{"MESSAGES", fmt.Sprint(f.Messages) + " "}, {"SIZE", humanBytes(f.Bytes)}, {"LAST SYNC", when}, {"SOURCE", "imaps://"},
		} {
			if got, want := column(line, c.cell), column(header, c.title); got != want {
				t.Errorf("%s: %s at column %d, header at %d:\n%s", f.Name, c.title, got, want, out.String())
			}
		}
	}
	total := lines[len(lines)-1]
	if got, want := column(total, humanBytes(85197+340+2<<20+439+1)), column(header, "SIZE"); got != want {
		t.Errorf("total size at column %d, header at %d:\n%s", got, want, out.String())
	}
}
