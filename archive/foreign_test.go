package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// ftMsg builds a small message with a distinct Message-ID and body.
func ftMsg(id, body string) string {
	return "From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: " + id +
		"\nMessage-ID: <" + id + "@example.org>\nDate: Mon, 2 Jan 2023 10:00:00 +0100\n\n" + body
}

// ftMboxoEscape escapes like mail clients: only "From " lines.
func ftMboxoEscape(msg string) string {
	return regexp.MustCompile(`(?m)^From `).ReplaceAllString(msg, ">From ")
}

// ftMboxrdEscape escapes like getmail/mpop: one more ">" on /^>*From /.
func ftMboxrdEscape(msg string) string {
	return regexp.MustCompile(`(?m)^(>*From )`).ReplaceAllString(msg, ">$1")
}

// ftWithHeaders inserts header lines the way clients do: Thunderbird at the
// top, mutt at the end of the header.
func ftWithHeaders(msg string, top bool, lines ...string) string {
	add := strings.Join(lines, "\n") + "\n"
	if top {
		return add + msg
	}
	i := strings.Index(msg, "\n\n")
	return msg[:i+1] + add + msg[i+1:]
}

func ftWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ftMkMaildir(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// ftWriteMaildirMsg writes a message file and sets its mtime (the date).
func ftWriteMaildirMsg(t *testing.T, dir, sub, name, content string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, sub, name)
	ftWriteFile(t, p, content)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func ftSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// ftTreeDigest fingerprints every name, mode, size, mtime and content under
// root, to prove a reader changed nothing.
func ftTreeDigest(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %d", p, st.Mode(), st.Size(), st.ModTime().UnixNano())
		if st.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + ftSHA(string(data)))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// readAll opens a foreign tree and returns folder infos by name and every
// folder's messages, checking for each message that Open yields exactly
// the bytes Messages measured.
type ftResult struct {
	folders map[string]FolderInfo
	msgs    map[string][]Meta
	bodies  map[string][]string // folder → message bytes in Messages order
}

func ftRead(t *testing.T, path string, opt ForeignOptions) ftResult {
	t.Helper()
	r, err := OpenForeignWith(path, opt)
	if err != nil {
		t.Fatalf("OpenForeign(%s): %v", path, err)
	}
	defer r.Close()
	infos, err := r.Folders()
	if err != nil {
		t.Fatal(err)
	}
	res := ftResult{folders: map[string]FolderInfo{}, msgs: map[string][]Meta{}, bodies: map[string][]string{}}
	for _, fi := range infos {
		res.folders[fi.Name] = fi
		if fi.NoSelect {
			if _, err := r.Messages(fi.Name); !errors.Is(err, ErrNoFolder) {
				t.Errorf("Messages(%q) of a container: err = %v, want ErrNoFolder", fi.Name, err)
			}
			continue
		}
		metas, err := r.Messages(fi.Name)
		if err != nil {
			t.Fatalf("Messages(%q): %v", fi.Name, err)
		}
		res.msgs[fi.Name] = metas
		keys := map[string]bool{}
		for _, m := range metas {
			if keys[m.Key] {
				t.Errorf("%s: duplicate key %q", fi.Name, m.Key)
			}
			keys[m.Key] = true
			rc, err := r.Open(fi.Name, m.Key)
			if err != nil {
				t.Fatalf("Open(%q, %q): %v", fi.Name, m.Key, err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(data)) != m.Size || ftSHA(string(data)) != m.SHA256 {
				t.Errorf("%s/%s: Open gave %d bytes %s, Messages said %d %s", fi.Name, m.Key,
					len(data), ftSHA(string(data))[:8], m.Size, m.SHA256[:8])
			}
			res.bodies[fi.Name] = append(res.bodies[fi.Name], string(data))
		}
	}
	// Folders reports counts once the folders have been read.
	infos, _ = r.Folders()
	for _, fi := range infos {
		if !fi.NoSelect && fi.Messages != len(res.msgs[fi.Name]) {
			t.Errorf("Folders() says %s has %d messages, Messages returned %d", fi.Name, fi.Messages, len(res.msgs[fi.Name]))
		}
	}
	return res
}

func ftFolderNames(res ftResult) []string {
	var names []string
	for n, fi := range res.folders {
		if fi.NoSelect {
			n += " (noselect)"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func ftWantNames(t *testing.T, res ftResult, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := ftFolderNames(res); !reflect.DeepEqual(got, want) {
		t.Errorf("folders:\n got %q\nwant %q", got, want)
	}
}

func ftWantFlags(t *testing.T, m Meta, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	got := m.Flags
	if got == nil {
		got = []string{}
	}
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("message %s (%s): flags %q, want %q", m.Key, m.MessageID, got, want)
	}
}

func ftByMessageID(t *testing.T, res ftResult, folder, id string) (Meta, string) {
	t.Helper()
	for i, m := range res.msgs[folder] {
		if m.MessageID == "<"+id+"@example.org>" {
			return m, res.bodies[folder][i]
		}
	}
	t.Fatalf("%s: no message %s", folder, id)
	return Meta{}, ""
}

func TestForeignThunderbirdProfile(t *testing.T) {
	profile := t.TempDir()
	ftWriteFile(t, filepath.Join(profile, "prefs.js"), "// prefs\n")
	local := filepath.Join(profile, "Mail", "Local Folders")
	moz := func(status string, keys string) []string {
		return []string{"X-Mozilla-Status: " + status, "X-Mozilla-Status2: 00000000",
			"X-Mozilla-Keys: " + keys + strings.Repeat(" ", 60)}
	}
	from := "From - Mon Jan  2 09:00:00 2023\n"
	unread := ftMsg("tb-unread", "Hello.\nFrom the start, a body line.\n")
	read := ftMsg("tb-read", "Read it.\n")
	flagged := ftMsg("tb-flagged", "Important.\n")
	replied := ftMsg("tb-replied", "Answered.\n")
	expunged := ftMsg("tb-expunged", "Deleted but not compacted.\n")
	forwarded := ftMsg("tb-forwarded", "Passed on.\n")
	inbox := from + ftWithHeaders(ftMboxoEscape(unread), true, moz("0000", "")...) + "\n" +
		from + ftWithHeaders(read, true, moz("0001", "$label1")...) + "\n" +
		"From - Tue Jan  3 09:00:00 2023\n" + ftWithHeaders(flagged, true, moz("0005", "")...) + "\n" +
		from + ftWithHeaders(expunged, true, moz("0009", "")...) + "\n" +
		from + ftWithHeaders(forwarded, true, moz("1001", "")...) + "\n"
	ftWriteFile(t, filepath.Join(local, "Inbox"), inbox)
	ftWriteFile(t, filepath.Join(local, "Inbox.msf"), "// mork index\n")
	ftWriteFile(t, filepath.Join(local, "Sent"), from+ftWithHeaders(replied, true, moz("0003", "")...)+"\n")
	ftWriteFile(t, filepath.Join(local, "Trash"), "")
	ftWriteFile(t, filepath.Join(local, "Trash.msf"), "")
	ftWriteFile(t, filepath.Join(local, "Unsent Messages"), "") // no .msf: not a folder
	ftWriteFile(t, filepath.Join(local, "msgFilterRules.dat"), "version=\"9\"\n")
	ftWriteFile(t, filepath.Join(local, "Inbox.sbd", "Work"), from+ftWithHeaders(ftMsg("tb-work", "Work.\n"), true, moz("0001", "")...)+"\n")
	ftWriteFile(t, filepath.Join(local, "Inbox.sbd", "Work.msf"), "")
	ftWriteFile(t, filepath.Join(local, "Archives.sbd", "2022"), from+ftWithHeaders(ftMsg("tb-2022", "Old.\n"), true, moz("0001", "")...)+"\n")
	ftWriteFile(t, filepath.Join(local, "Archives.sbd", "2022.msf"), "")
	before := ftTreeDigest(t, profile)

	if _, err := OpenForeign(profile); err == nil || !strings.Contains(err.Error(), "Local Folders") {
		t.Errorf("opening the profile root: err = %v, want a hint naming Mail/Local Folders", err)
	}

	res := ftRead(t, local, ForeignOptions{})
	ftWantNames(t, res, "INBOX", "INBOX/Work", "Sent", "Trash", "Archives (noselect)", "Archives/2022")
	if got := res.folders["Sent"].SpecialUse; got != SpecialSent {
		t.Errorf("Sent special use %q", got)
	}
	if got := res.folders["Trash"].SpecialUse; got != SpecialTrash {
		t.Errorf("Trash special use %q", got)
	}
	if n := len(res.msgs["INBOX"]); n != 4 {
		t.Fatalf("INBOX has %d messages, want 4 (the expunged one skipped)", n)
	}
	m, body := ftByMessageID(t, res, "INBOX", "tb-unread")
	ftWantFlags(t, m)
	if body != unread {
		t.Errorf("unread message bytes:\n%q\nwant\n%q", body, unread)
	}
	if m.Key != "0" || !m.Date.Equal(time.Date(2023, 1, 2, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("key %q date %v", m.Key, m.Date)
	}
	m, body = ftByMessageID(t, res, "INBOX", "tb-read")
	ftWantFlags(t, m, FlagSeen, "$label1")
	if body != read {
		t.Errorf("read message bytes %q", body)
	}
	m, _ = ftByMessageID(t, res, "INBOX", "tb-flagged")
	ftWantFlags(t, m, FlagSeen, FlagFlagged)
	if !m.Date.Equal(time.Date(2023, 1, 3, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("date %v", m.Date)
	}
	m, _ = ftByMessageID(t, res, "INBOX", "tb-forwarded")
	ftWantFlags(t, m, FlagSeen, FlagForwarded)
	m, body = ftByMessageID(t, res, "Sent", "tb-replied")
	ftWantFlags(t, m, FlagSeen, FlagAnswered)
	if body != replied || m.Size != int64(len(replied)) || m.SHA256 != ftSHA(replied) {
		t.Errorf("Sent message not exact: %q", body)
	}

	all := ftRead(t, local, ForeignOptions{IncludeDeleted: true})
	m, _ = ftByMessageID(t, all, "INBOX", "tb-expunged")
	ftWantFlags(t, m, FlagSeen, FlagDeleted)

	if after := ftTreeDigest(t, profile); after != before {
		t.Errorf("reading changed the tree")
	}
}

func TestForeignMuttMbox(t *testing.T) {
	dir := t.TempDir()
	plain := ftMsg("mutt-new", "New mail.\n")
	seen := ftMsg("mutt-seen", "Seen.\n")
	answered := ftMsg("mutt-answered", "Answered and flagged.\n")
	draft := ftMsg("mutt-draft", "A draft.\n")
	deleted := ftMsg("mutt-deleted", "Gone.\n")
	kw := ftMsg("mutt-kw", "Keywords.\n")
	box := "From alice@example.org Mon Jan  2 10:00:00 2023\n" + ftWithHeaders(plain, false, "Status: O") + "\n" +
		"From alice@example.org Mon Jan  2 11:00:00 2023 +0200\n" + ftWithHeaders(seen, false, "Status: RO") + "\n" +
		"From alice@example.org Mon Jan  2 12:00:00 2023\n" + ftWithHeaders(answered, false, "Status: RO", "X-Status: AF") + "\n" +
		"From alice@example.org Mon Jan  2 13:00:00 2023\n" + ftWithHeaders(draft, false, "Status: O", "X-Status: T") + "\n" +
		"From alice@example.org Mon Jan  2 14:00:00 2023\n" + ftWithHeaders(deleted, false, "Status: RO", "X-Status: D") + "\n" +
		"From alice@example.org Mon Jan  2 15:00:00 2023\n" + ftWithHeaders(kw, false, "X-Keywords: work, $Todo", "\tlater") + "\n"
	ftWriteFile(t, filepath.Join(dir, "Mail", "inbox"), box)
	ftWriteFile(t, filepath.Join(dir, "Mail", "lists", "golang"), "From x@example.org Mon Jan  2 10:00:00 2023\n"+ftMsg("list-1", "List.\n")+"\n")
	ftWriteFile(t, filepath.Join(dir, "Mail", "sent-mail"), "From x@example.org Mon Jan  2 10:00:00 2023\n"+ftMsg("sent-1", "Sent.\n")+"\n")
	ftWriteFile(t, filepath.Join(dir, "Mail", "notes.txt"), "not mail\n")
	ftWriteFile(t, filepath.Join(dir, "Mail", ".mutt_cache", "x"), "From junk Mon Jan  2 10:00:00 2023\n")

	res := ftRead(t, filepath.Join(dir, "Mail"), ForeignOptions{})
	ftWantNames(t, res, "INBOX", "lists (noselect)", "lists/golang", "sent-mail")
	if res.folders["sent-mail"].SpecialUse != SpecialSent {
		t.Errorf("sent-mail special use %q", res.folders["sent-mail"].SpecialUse)
	}
	if n := len(res.msgs["INBOX"]); n != 5 {
		t.Fatalf("INBOX: %d messages, want 5", n)
	}
	for _, c := range []struct {
		id    string
		orig  string
		flags []string
	}{
		{"mutt-new", plain, nil},
		{"mutt-seen", seen, []string{FlagSeen}},
		{"mutt-answered", answered, []string{FlagSeen, FlagAnswered, FlagFlagged}},
		{"mutt-draft", draft, []string{FlagDraft}},
		{"mutt-kw", kw, []string{"work", "$Todo", "later"}},
	} {
		m, body := ftByMessageID(t, res, "INBOX", c.id)
		ftWantFlags(t, m, c.flags...)
		if body != c.orig {
			t.Errorf("%s bytes:\n%q\nwant\n%q", c.id, body, c.orig)
		}
	}
	m, _ := ftByMessageID(t, res, "INBOX", "mutt-seen")
	if want := time.Date(2023, 1, 2, 9, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("zoned From_ date %v, want %v", m.Date, want)
	}
}

func TestForeignMboxVariants(t *testing.T) {
	orig := ftMsg("esc", "Line one\nFrom the start\n>From quoted once\n>>From quoted twice\nFrom here on\n")
	dir := t.TempDir()
	ftWriteFile(t, filepath.Join(dir, "rd"), "From a@b Mon Jan  2 10:00:00 2023\n"+ftMboxrdEscape(orig)+"\n")
	ftWriteFile(t, filepath.Join(dir, "o"), "From a@b Mon Jan  2 10:00:00 2023\n"+ftMboxoEscape(orig)+"\n")

	rd := ftRead(t, filepath.Join(dir, "rd"), ForeignOptions{Mbox: MboxRD})
	if got := rd.bodies["rd"][0]; got != orig {
		t.Errorf("mboxrd read as mboxrd:\n%q\nwant\n%q", got, orig)
	}
	// mboxo: the one ambiguous line (an original ">From") loses its ">";
	// deeper quoting is untouched.
	o := ftRead(t, filepath.Join(dir, "o"), ForeignOptions{})
	wantO := strings.Replace(orig, "\n>From quoted once", "\nFrom quoted once", 1)
	if got := o.bodies["o"][0]; got != wantO {
		t.Errorf("mboxo read as mboxo:\n%q\nwant\n%q", got, wantO)
	}
	// mboxrd read with the default: only the original ">From" line is off.
	rdDefault := ftRead(t, filepath.Join(dir, "rd"), ForeignOptions{})
	wantRD := strings.Replace(orig, "\n>From quoted once", "\n>>From quoted once", 1)
	wantRD = strings.Replace(wantRD, "\n>>From quoted twice", "\n>>>From quoted twice", 1)
	if got := rdDefault.bodies["rd"][0]; got != wantRD {
		t.Errorf("mboxrd read as mboxo:\n%q\nwant\n%q", got, wantRD)
	}
}

func TestForeignMboxFraming(t *testing.T) {
	crlf := strings.ReplaceAll(ftMsg("crlf", "CRLF body\n\nwith a blank line\n"), "\n", "\r\n")
	noFinalNewline := ftMsg("last", "no newline at the end")
	unescaped := ftMsg("unescaped", "Para one.\n\nFrom here on, nothing is escaped.\n")
	trailingBlanks := ftMsg("blanks", "Ends with blank lines.\n\n\n")
	long := ftMsg("long", strings.Repeat("x", 200<<10)+"\n"+strings.Repeat("y", 70<<10)+"\n")
	longHeader := ftWithHeaders(ftMsg("longhdr", "Body.\n"), false, "X-Status: "+strings.Repeat("A", 100<<10))
	content := "\n" + // leading blank line
		"From a@b Mon Jan  2 10:00:00 2023\r\n" + crlf + "\r\n" +
		"From a@b Mon Jan  2 10:00:00 2023\n" + unescaped + "\n" +
		"From a@b Mon Jan  2 10:00:00 2023\n" + trailingBlanks + "\n" +
		"From a@b Mon Jan  2 10:00:00 2023\n" + long + "\n" +
		"From a@b Mon Jan  2 10:00:00 2023\n" + longHeader + "\n" +
		"From a@b Mon Jan  2 10:00:00 2023\n" + noFinalNewline
	dir := t.TempDir()
	ftWriteFile(t, filepath.Join(dir, "box.mbox"), content)
	res := ftRead(t, filepath.Join(dir, "box.mbox"), ForeignOptions{})
	ftWantNames(t, res, "box")
	want := []string{crlf, unescaped, trailingBlanks, long, ftMsg("longhdr", "Body.\n"), noFinalNewline}
	got := res.bodies["box"]
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			a, b := got[i], want[i]
			if len(a) > 200 {
				a, b = a[:200], b[:min(200, len(b))]
			}
			t.Errorf("message %d: got %d bytes %q…, want %d bytes %q…", i, len(got[i]), a, len(want[i]), b)
		}
	}
	if res.msgs["box"][0].Key != "1" {
		t.Errorf("first key %q, want 1 (after the leading blank line)", res.msgs["box"][0].Key)
	}
	ftWantFlags(t, res.msgs["box"][4], FlagAnswered)
}

func TestForeignDovecotMaildirPlusPlus(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	date := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
	ftMkMaildir(t, root)
	ftWriteFile(t, filepath.Join(root, "dovecot-uidlist"), "3 V1 N1\n")
	ftWriteFile(t, filepath.Join(root, "dovecot.index.log"), "binary")
	ftWriteFile(t, filepath.Join(root, "subscriptions"), "Sent\n")
	ftWriteFile(t, filepath.Join(root, "dovecot-keywords"), "0 Work\n1 $Important\n")
	inboxSeen := strings.ReplaceAll(ftMsg("dc-seen", "Seen.\n"), "\n", "\r\n")
	ftWriteMaildirMsg(t, root, "cur", "1651820889.M1P1.host,S=100,W=102:2,S", inboxSeen, date)
	ftWriteMaildirMsg(t, root, "cur", "1651820890.M2P1.host,S=100:2,RSab", ftMsg("dc-kw", "Keywords.\n"), date.Add(time.Hour))
	ftWriteMaildirMsg(t, root, "cur", "1651820891.M3P1.host:2,FST", ftMsg("dc-trashed", "Trashed.\n"), date)
	ftWriteMaildirMsg(t, root, "new", "1651820892.M4P1.host", ftMsg("dc-new", "New.\n"), date)
	ftWriteMaildirMsg(t, root, "tmp", "1651820893.M5P1.host", "partial", date)
	ftWriteMaildirMsg(t, root, "cur", ".hidden", "x", date)

	sent := filepath.Join(root, ".Sent")
	ftMkMaildir(t, sent)
	ftWriteFile(t, filepath.Join(sent, "maildirfolder"), "")
	ftWriteMaildirMsg(t, sent, "cur", "1.M1.host:2,S", ftMsg("dc-sent", "Sent.\n"), date)
	utf := filepath.Join(root, ".Entw&APw-rfe.&ANw-nter")
	ftMkMaildir(t, utf)
	ftWriteMaildirMsg(t, utf, "cur", "1.M1.host:2,D", ftMsg("dc-draft", "Draft.\n"), date)
	ftMkMaildir(t, filepath.Join(root, ".Tom &- Jerry"))
	ftMkMaildir(t, filepath.Join(root, ".a.b"))
	ftMkMaildir(t, filepath.Join(root, ".Junk"))
	before := ftTreeDigest(t, root)

	res := ftRead(t, root, ForeignOptions{})
	ftWantNames(t, res, "INBOX", "Sent", "Entwürfe (noselect)", "Entwürfe/Ünter", "Tom & Jerry", "a (noselect)", "a/b", "Junk")
	if res.folders["Sent"].SpecialUse != SpecialSent || res.folders["Junk"].SpecialUse != SpecialJunk {
		t.Errorf("special use: Sent %q Junk %q", res.folders["Sent"].SpecialUse, res.folders["Junk"].SpecialUse)
	}
	if n := len(res.msgs["INBOX"]); n != 3 {
		t.Fatalf("INBOX: %d messages, want 3 (trashed skipped, tmp ignored)", n)
	}
	m, body := ftByMessageID(t, res, "INBOX", "dc-seen")
	ftWantFlags(t, m, FlagSeen)
	if body != inboxSeen || m.Key != "1651820889.M1P1.host,S=100,W=102" || !m.Date.Equal(date) {
		t.Errorf("dc-seen: key %q date %v exact %v", m.Key, m.Date, body == inboxSeen)
	}
	m, _ = ftByMessageID(t, res, "INBOX", "dc-kw")
	ftWantFlags(t, m, FlagSeen, FlagAnswered, "Work", "$Important")
	m, _ = ftByMessageID(t, res, "INBOX", "dc-new")
	ftWantFlags(t, m)
	m, _ = ftByMessageID(t, res, "Entwürfe/Ünter", "dc-draft")
	ftWantFlags(t, m, FlagDraft)
	if after := ftTreeDigest(t, root); after != before {
		t.Errorf("reading changed the maildir (new/ must not move to cur/)")
	}

	// A client renames a file (new flags) after the scan: Open still finds it.
	r, err := OpenForeign(root)
	if err != nil {
		t.Fatal(err)
	}
	metas, _ := r.Messages("INBOX")
	os.Rename(filepath.Join(root, "new", "1651820892.M4P1.host"), filepath.Join(root, "cur", "1651820892.M4P1.host:2,S"))
	for _, m := range metas {
		rc, err := r.Open("INBOX", m.Key)
		if err != nil {
			t.Fatalf("Open after rename: %v", err)
		}
		rc.Close()
	}
}

func TestForeignNestedMaildirs(t *testing.T) {
	root := t.TempDir()
	date := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range []string{"Inbox", "Sent Messages", "Archive", "Archive/2023", "Lists/go", "Projects", "Projects/.x", "Projects/.x/.y", "v1.2"} {
		ftMkMaildir(t, filepath.Join(root, filepath.FromSlash(d)))
		ftWriteMaildirMsg(t, filepath.Join(root, filepath.FromSlash(d)), "cur", "1.M1.h:2,S", ftMsg("n-"+strings.ReplaceAll(d, "/", "-"), d+"\n"), date)
	}
	res := ftRead(t, root, ForeignOptions{})
	ftWantNames(t, res, "INBOX", "Sent Messages", "Archive", "Archive/2023", "Lists (noselect)", "Lists/go",
		"Projects", "Projects/x", "Projects/x/y", "v1.2")
	for name, fi := range res.folders {
		if !fi.NoSelect && len(res.msgs[name]) != 1 {
			t.Errorf("%s: %d messages", name, len(res.msgs[name]))
		}
	}
	if res.folders["Sent Messages"].SpecialUse != SpecialSent || res.folders["Archive"].SpecialUse != SpecialArchive {
		t.Errorf("special use: %+v %+v", res.folders["Sent Messages"], res.folders["Archive"])
	}
	if res.folders["Archive/2023"].SpecialUse != "" {
		t.Errorf("Archive/2023 must not be special")
	}

	// OfflineIMAP: flat directories with "." as the separator.
	off := t.TempDir()
	for _, d := range []string{"INBOX", "INBOX.Sent", "INBOX.Sent.2020", "Work", "Work.&AMk-t&AOk-"} {
		ftMkMaildir(t, filepath.Join(off, d))
	}
	res = ftRead(t, off, ForeignOptions{})
	ftWantNames(t, res, "INBOX", "INBOX/Sent", "INBOX/Sent/2020", "Work", "Work/Été")
	if res.folders["INBOX/Sent"].SpecialUse != SpecialSent {
		t.Errorf("INBOX/Sent special use %q", res.folders["INBOX/Sent"].SpecialUse)
	}

	// A maildir given directly keeps its name.
	res = ftRead(t, filepath.Join(root, "Archive"), ForeignOptions{})
	ftWantNames(t, res, "Archive", "Archive/2023")
}

func TestForeignSingleFiles(t *testing.T) {
	dir := t.TempDir()
	ftWriteFile(t, filepath.Join(dir, "Sent.mbox"), "From a@b Mon Jan  2 10:00:00 2023\n"+ftMsg("s1", "x\n")+"\nFrom a@b Mon Jan  2 10:00:00 2023\n"+ftMsg("s1", "x\n")+"\n")
	res := ftRead(t, filepath.Join(dir, "Sent.mbox"), ForeignOptions{})
	ftWantNames(t, res, "Sent")
	if res.folders["Sent"].SpecialUse != SpecialSent {
		t.Errorf("special use %q", res.folders["Sent"].SpecialUse)
	}
	if ms := res.msgs["Sent"]; len(ms) != 2 || ms[0].SHA256 != ms[1].SHA256 || ms[0].Key == ms[1].Key {
		t.Errorf("two identical messages must stay two with distinct keys: %+v", ms)
	}
	ftWriteFile(t, filepath.Join(dir, "notmail"), "Hello\n")
	if _, err := OpenForeign(filepath.Join(dir, "notmail")); err == nil {
		t.Errorf("a text file opened as mbox")
	}
	if _, err := OpenForeign(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("a missing path opened")
	}
	empty := t.TempDir()
	ftWriteFile(t, filepath.Join(empty, "readme"), "nothing here\n")
	if _, err := OpenForeign(empty); err == nil {
		t.Errorf("a directory without mail opened")
	}
}

func TestForeignMboxOpenStaleKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "box")
	ftWriteFile(t, p, "From a@b Mon Jan  2 10:00:00 2023\n"+ftMsg("k", "body\n")+"\n")
	r, err := OpenForeign(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"5", "-1", "x", "100000"} {
		if _, err := r.Open("box", key); !errors.Is(err, ErrNoMessage) {
			t.Errorf("Open(%q): %v, want ErrNoMessage", key, err)
		}
	}
}

func TestForeignParseFromLine(t *testing.T) {
	for line, want := range map[string]string{
		"From - Mon Jan  2 09:00:00 2023":                        "2023-01-02T09:00:00Z",
		"From MAILER-DAEMON Fri Jul  8 12:08:34 2011":            "2011-07-08T12:08:34Z",
		"From a@b Sat Jan  3 01:05:34 1996 -0800":                "1996-01-03T09:05:34Z",
		"From a@b Sat Jan  3 01:05:34 PST 1996":                  "1996-01-03T09:05:34Z",
		"From  Mon Jan  2 09:00 2023":                            "2023-01-02T09:00:00Z",
		"From Jan Mon Jan  2 09:00:00 2023":                      "2023-01-02T09:00:00Z",
		"From here on, nothing":                                  "",
		"From a@b Mon Feb 31 09:00:00 2023":                      "",
		"From the Jan 2 meeting we learned 12:00 things in 2023": "",
	} {
		got, ok := foreignParseFromLine(line)
		if want == "" {
			if ok {
				t.Errorf("%q parsed as %v", line, got)
			}
			continue
		}
		if !ok || got.UTC().Format(time.RFC3339) != want {
			t.Errorf("%q: %v %v, want %s", line, got, ok, want)
		}
	}
}

func TestForeignSpecialUseByName(t *testing.T) {
	for name, want := range map[string]string{
		"Sent": SpecialSent, "Sent Items": SpecialSent, "INBOX/Sent": SpecialSent, "Gesendet": SpecialSent,
		"[Gmail]/Sent Mail": SpecialSent, "Deleted Items": SpecialTrash, "Junk E-mail": SpecialJunk,
		"Entwürfe": SpecialDrafts, "Archive": SpecialArchive, "[Gmail]/All Mail": SpecialAll,
		"Projects/Sent": "", "INBOX": "", "Work": "",
	} {
		if got := SpecialUseByName(name); got != want {
			t.Errorf("%q: %q, want %q", name, got, want)
		}
	}
}
