package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/pop3server"
	"github.com/mailark/mailark/internal/testkit"
)

const pop3TestPassword = "pop-Secret-42"

// popFixture is a pop3server with user "carol" and an account for it.
type popFixture struct {
	srv   *pop3server.Server
	store *pop3server.MemStore
	acct  *account.Account
	trace *popTrace
}

func newPopFixture(t *testing.T, hooks pop3server.Hooks) *popFixture {
	t.Helper()
	store := pop3server.NewMemStore()
	srv := &pop3server.Server{Store: store, Users: map[string]string{"carol": pop3TestPassword}, Hooks: hooks}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	a, err := account.ParseURL("pop3://carol@"+addr, account.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Secret = testkit.Secret(pop3TestPassword)
	a.Timeout = 10 * time.Second
	f := &popFixture{srv: srv, store: store, acct: a, trace: &popTrace{}}
	a.Trace = f.trace
	return f
}

// popTrace collects a trace.
type popTrace struct{ testkit.Buffer }

// count counts trace lines the client sent starting with verb.
func (s *popTrace) count(verb string) int {
	return strings.Count(s.String(), "pop3 C: "+verb)
}

// add puts messages on the server and returns them.
func (f *popFixture) add(msgs ...[]byte) {
	for _, m := range msgs {
		f.store.Add("carol", m)
	}
}

// serverSums is the multiset of SHA-256 of the bytes a client gets.
func (f *popFixture) serverSums() map[string]int {
	out := map[string]int{}
	for _, m := range f.store.Messages("carol") {
		out[popSHA(pop3server.Wire(m.Data))]++
	}
	return out
}

func popSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// popMessages makes n distinct, realistic-looking messages; some have
// dot lines, bare LFs, long lines, no final newline or no Message-ID.
func popMessages(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([][]byte, n)
	for i := range n {
		var b strings.Builder
		day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(365*24)) * time.Hour)
		fmt.Fprintf(&b, "Received: from mx.example.org by pop.example.net; %s\r\n", day.Format(time.RFC1123Z))
		fmt.Fprintf(&b, "Date: %s\r\n", day.Add(-time.Minute).Format(time.RFC1123Z))
		fmt.Fprintf(&b, "From: sender%d@example.org\r\nTo: carol@example.net\r\n", r.IntN(50))
		if i%17 != 5 {
			fmt.Fprintf(&b, "Message-ID: <%d.%d.%d@example.org>\r\n", seed, i, r.Uint32())
		}
		fmt.Fprintf(&b, "Subject: message %d of seed %d\r\n\r\n", i, seed)
		lines := 5 + r.IntN(200)
		for l := range lines {
			switch {
			case r.IntN(40) == 0:
				b.WriteString(".dot-started line\r\n")
			case r.IntN(60) == 0:
				b.WriteString(".\r\n")
			case r.IntN(200) == 0:
				b.WriteString(strings.Repeat("long", 5000) + "\r\n")
			default:
				fmt.Fprintf(&b, "line %d of message %d: %x\r\n", l, i, r.Uint64())
			}
		}
		msg := b.String()
		switch i % 23 {
		case 3:
			msg = strings.ReplaceAll(msg, "\r\n", "\n") // bare LF
		case 11:
			msg = strings.TrimSuffix(msg, "\r\n") // no final newline
		}
		out[i] = []byte(msg)
	}
	return out
}

// popOpenArchive opens (creating) an archive of the given format in dir.
func popOpenArchive(t *testing.T, format archive.Format, dir string) *archive.Archive {
	t.Helper()
	arc, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return arc
}

// popArchiveSums reads every INBOX message back and returns the multiset of
// SHA-256 of the bytes, checked against the index.
func popArchiveSums(t *testing.T, format archive.Format, dir string) map[string]int {
	t.Helper()
	arc, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer arc.Close()
	out := map[string]int{}
	f, err := arc.Folder("INBOX")
	if err != nil {
		return out
	}
	for _, m := range f.Entries() {
		rc, err := f.Open(m.Key)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading %s: %v", m.Key, err)
		}
		got := hex.EncodeToString(h.Sum(nil))
		if got != m.SHA256 || n != m.Size {
			t.Fatalf("message %s: read %d bytes %s, index says %d %s", m.Key, n, got, m.Size, m.SHA256)
		}
		out[got]++
	}
	return out
}

func popSumsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func popSumsDiff(want, got map[string]int) string {
	var d []string
	for k, v := range want {
		if got[k] != v {
			d = append(d, fmt.Sprintf("%s…: want %d got %d", k[:12], v, got[k]))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s…: want 0 got %d", k[:12], v))
		}
	}
	sort.Strings(d)
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("... %d more", len(d)-10))
	}
	return strings.Join(d, "; ")
}

// runPOP3 opens the archive, fetches, closes.
func runPOP3(t *testing.T, a *account.Account, format archive.Format, dir string, opt Options) (*Result, error) {
	t.Helper()
	arc := popOpenArchive(t, format, dir)
	defer arc.Close()
	return POP3(context.Background(), a, arc, opt)
}

func mustPOP3(t *testing.T, a *account.Account, format archive.Format, dir string, opt Options) *Result {
	t.Helper()
	res, err := runPOP3(t, a, format, dir, opt)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return res
}

// popTreeDigest fingerprints every file under dir (path, mode, content) to
// prove a failed run changed nothing.
func popTreeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %v\n", rel, info.Mode())
		if d.Type().IsRegular() && filepath.Base(p) != "lock" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

var popFormats = []archive.Format{archive.Maildir, archive.Mbox}
