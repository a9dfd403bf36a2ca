package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/testbed"
	"github.com/mailark/mailark/internal/testkit"
)

// bedAccount is an account on the test bed's Dovecot (plaintext on
// loopback: the TLS paths are imapconn's to test).
func bedAccount(srv *testbed.Server, user string) *account.Account {
	return &account.Account{Protocol: account.IMAP, User: user, Host: srv.Host, Port: srv.IMAPPort,
		Security: account.Plain, Auth: account.AuthPassword, Secret: testkit.Secret(testbed.Password),
		Timeout: 20 * time.Second}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// folderDigest describes a folder's content as a sorted multiset of
// "sha flags date" lines, comparable across servers.
func folderDigest(msgs []testbed.Message, withDates bool) []string {
	var out []string
	for _, m := range msgs {
		line := sum(m.Raw) + " " + strings.Join(testbed.NormalizeFlags(m.Flags), ",")
		if withDates {
			line += " " + m.Date.UTC().Format(time.RFC3339)
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

// buildArchive writes msgs into a new mailark archive of the given format,
// with the special-use of each folder as a server would report it.
func buildArchive(t testing.TB, format archive.Format, msgs []testbed.Message, specialUse map[string]string) (string, *archive.Archive) {
	t.Helper()
	spec := string(format) + ":" + filepath.Join(t.TempDir(), "archive")
	a, err := archive.Open(context.Background(), spec, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	folders := map[string]*archive.Folder{}
	for _, m := range msgs {
		f := folders[m.Folder]
		if f == nil {
			f, err = a.CreateFolder(m.Folder, specialUse[m.Folder])
			if err != nil {
				t.Fatal(err)
			}
			folders[m.Folder] = f
		}
		if _, err := f.Append(strings.NewReader(string(m.Raw)), archive.AppendInfo{Flags: m.Flags, Date: m.Date, UID: m.UID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range folders {
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return spec, a
}

func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
