package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
	"github.com/mailark/mailark/internal/testkit"
)

// imapTrace collects a protocol trace (safe for concurrent writes).
type imapTrace struct{ testkit.Buffer }

// bodyFetches counts FETCH commands that asked for message bodies.
func (t *imapTrace) bodyFetches() int {
	n := 0
	for _, l := range strings.Split(t.String(), "\n") {
		if strings.Contains(l, " C: ") && strings.Contains(l, "FETCH") && strings.Contains(l, "BODY.PEEK[]") {
			n++
		}
	}
	return n
}

// count counts client lines containing all of words.
func (t *imapTrace) count(words ...string) int {
	n := 0
	for _, l := range strings.Split(t.String(), "\n") {
		if !strings.Contains(l, " C: ") {
			continue
		}
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			n++
		}
	}
	return n
}

func imapAccount(host string, port int) (*account.Account, *imapTrace) {
	tr := &imapTrace{}
	return &account.Account{
		Protocol: account.IMAP, User: imaptest.User, Host: host, Port: port,
		Security: account.Plain, Auth: account.AuthPassword, Secret: testkit.Secret(imaptest.Password),
		Timeout: 10 * time.Second, Trace: tr,
	}, tr
}

var imapFormats = []archive.Format{archive.Maildir, archive.Mbox}

func imapOpenArchive(t testing.TB, format archive.Format, dir string) *archive.Archive {
	t.Helper()
	a, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{})
	if err != nil {
		t.Fatalf("open archive: %v", err)
	}
	return a
}

// runIMAPFetch opens the archive, fetches, closes it.
func runIMAPFetch(t testing.TB, a *account.Account, format archive.Format, dir string, opt Options) (*Result, error) {
	t.Helper()
	arc := imapOpenArchive(t, format, dir)
	defer arc.Close()
	return IMAP(context.Background(), a, arc, opt)
}

func mustIMAPFetch(t testing.TB, a *account.Account, format archive.Format, dir string, opt Options) *Result {
	t.Helper()
	res, err := runIMAPFetch(t, a, format, dir, opt)
	if err != nil {
		t.Fatalf("fetch: %v (result %+v)", err, res)
	}
	return res
}

// msgKey identifies a message with what fetch must keep: its bytes, its
// flags (case-insensitive, without \Recent) and its INTERNALDATE instant.
func msgKey(raw []byte, flags []string, date time.Time) string {
	return fmt.Sprintf("%s|%s|%s", sha(raw), normFlags(flags), date.UTC().Format(time.RFC3339))
}

func sha(raw []byte) string {
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

func normFlags(flags []string) string {
	var out []string
	for _, f := range flags {
		if f = strings.ToLower(f); f != `\recent` && f != "" {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return strings.Join(slices.Compact(out), " ")
}

// archiveSnapshot reads every folder of an archive (name -> sorted keys),
// reading the message bytes back through the archive.
func archiveSnapshot(t testing.TB, format archive.Format, dir string) map[string][]string {
	t.Helper()
	a, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open archive read-only: %v", err)
	}
	defer a.Close()
	folders, err := a.Folders()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, fi := range folders {
		if fi.NoSelect {
			continue
		}
		metas, err := a.Messages(fi.Name)
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{}
		for _, m := range metas {
			rc, err := a.Open(fi.Name, m.Key)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read back %s/%s: %v", fi.Name, m.Key, err)
			}
			keys = append(keys, msgKey(raw, m.Flags, m.Date))
		}
		sort.Strings(keys)
		out[fi.Name] = keys
	}
	return out
}

func diffSnapshots(want, got map[string][]string) string {
	var b strings.Builder
	names := map[string]bool{}
	for n := range want {
		names[n] = true
	}
	for n := range got {
		names[n] = true
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		w, g := want[n], got[n]
		if slices.Equal(w, g) {
			continue
		}
		fmt.Fprintf(&b, "folder %q: want %d messages, got %d\n", n, len(w), len(g))
		wm, gm := map[string]int{}, map[string]int{}
		for _, k := range w {
			wm[k]++
		}
		for _, k := range g {
			gm[k]++
		}
		shown := 0
		for k, c := range wm {
			if gm[k] != c && shown < 5 {
				fmt.Fprintf(&b, "  want %dx %s, got %d\n", c, k, gm[k])
				shown++
			}
		}
		for k, c := range gm {
			if wm[k] == 0 && shown < 10 {
				fmt.Fprintf(&b, "  unexpected %dx %s\n", c, k)
				shown++
			}
		}
	}
	return b.String()
}

// seedMsg builds a realistic small message.
func seedMsg(r *rand.Rand, i int, folder string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Sender %d <s%d@example.org>\r\n", i%7, i%7)
	fmt.Fprintf(&b, "To: alice@example.org\r\n")
	fmt.Fprintf(&b, "Subject: message %d in %s\r\n", i, folder)
	fmt.Fprintf(&b, "Message-ID: <%d.%s@test>\r\n", i, strings.ReplaceAll(folder, "/", "."))
	fmt.Fprintf(&b, "Date: Mon, 2 Jan 2006 15:04:05 +0000\r\n\r\n")
	for j := 0; j < 1+r.IntN(40); j++ {
		fmt.Fprintf(&b, "line %d of body %d: %x\r\n", j, i, r.Uint64())
	}
	if i%5 == 0 {
		b.WriteString("From the start of a line\r\n>From quoted\r\n")
	}
	return []byte(b.String())
}

var seedFlags = [][]imap.Flag{
	nil,
	{imap.FlagSeen},
	{imap.FlagSeen, imap.FlagAnswered},
	{imap.FlagFlagged},
	{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered},
	{imap.FlagDraft},
}

// seedMem fills an in-memory server and returns what it holds, as
// archive snapshots expect it.
func seedMem(t testing.TB, srv *imaptest.Server, counts map[string]int, seed uint64) map[string][]string {
	r := rand.New(rand.NewPCG(seed, 1))
	want := map[string][]string{}
	base := time.Date(2014, 3, 1, 12, 0, 0, 0, time.UTC)
	for folder, n := range counts {
		for i := 0; i < n; i++ {
			raw := seedMsg(r, i, folder)
			flags := seedFlags[r.IntN(len(seedFlags))]
			date := base.Add(time.Duration(r.IntN(10*365*24)) * time.Hour)
			srv.Append(t, imaptest.Msg{Folder: folder, Raw: raw, Flags: flags, Date: date})
			want[folder] = append(want[folder], msgKey(raw, flagsToStrings(flags), date))
		}
		sort.Strings(want[folder])
	}
	return want
}

func flagsToStrings(fl []imap.Flag) []string {
	out := make([]string, len(fl))
	for i, f := range fl {
		out[i] = string(f)
	}
	return out
}

func tempArchive(t testing.TB) string { return filepath.Join(t.TempDir(), "archive") }
