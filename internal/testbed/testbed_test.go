package testbed

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// caConfig builds a TLS client configuration from a CA file alone, the way
// mailark's --ca-file does, so the tests prove the file is sufficient.
func caConfig(t *testing.T, caFile, serverName string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// login connects over IMAPS (verified with the CA file) or plain IMAP and
// logs in.
func login(t *testing.T, s *Server, user string, useTLS bool) *imapclient.Client {
	t.Helper()
	opts := &imapclient.Options{TLSConfig: caConfig(t, s.CAFile, "127.0.0.1")}
	var c *imapclient.Client
	var err error
	if useTLS {
		c, err = imapclient.DialTLS(s.IMAPSAddr(), opts)
	} else {
		c, err = imapclient.DialInsecure(s.IMAPAddr(), opts)
	}
	if err != nil {
		t.Fatalf("dial (tls=%v): %v", useTLS, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, Password).Wait(); err != nil {
		t.Fatalf("login %s (tls=%v): %v", user, useTLS, err)
	}
	return c
}

// imapMessages reads a folder with EXAMINE and UID FETCH 1:* (UID FLAGS
// INTERNALDATE BODY.PEEK[]).
func imapMessages(t *testing.T, c *imapclient.Client, folder string) []Message {
	t.Helper()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE %q: %v", folder, err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH in %q: %v", folder, err)
	}
	msgs := make([]Message, 0, len(bufs))
	for _, b := range bufs {
		var flags []string
		for _, f := range b.Flags {
			flags = append(flags, string(f))
		}
		msgs = append(msgs, Message{
			Folder: folder,
			Raw:    b.FindBodySection(section),
			Flags:  NormalizeFlags(flags),
			Date:   b.InternalDate,
			UID:    uint32(b.UID),
		})
	}
	return msgs
}

// sameMessages compares messages field by field; dates as instants, since
// Dovecot reports INTERNALDATE in its own zone.
func sameMessages(t *testing.T, what string, got, want []Message, compareUID bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if compareUID && g.UID != w.UID {
			t.Errorf("%s #%d: UID %d, want %d", what, i, g.UID, w.UID)
		}
		if !bytes.Equal(g.Raw, w.Raw) {
			t.Errorf("%s #%d (UID %d): %d bytes differ from the %d expected; first difference at %d",
				what, i, g.UID, len(g.Raw), len(w.Raw), firstDiff(g.Raw, w.Raw))
		}
		if !slices.Equal(g.Flags, NormalizeFlags(w.Flags)) {
			t.Errorf("%s #%d (UID %d): flags %q, want %q", what, i, g.UID, g.Flags, NormalizeFlags(w.Flags))
		}
		if !g.Date.Equal(w.Date) {
			t.Errorf("%s #%d (UID %d): date %v, want %v", what, i, g.UID, g.Date, w.Date)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestStartAndTLS(t *testing.T) {
	t0 := time.Now()
	s := Start(t)
	t.Logf("Start took %v (dir %s, imap %d, imaps %d, pop3 %d, pop3s %d)",
		time.Since(t0), s.Dir, s.IMAPPort, s.IMAPSPort, s.POP3Port, s.POP3SPort)

	ports := []int{s.IMAPPort, s.IMAPSPort, s.POP3Port, s.POP3SPort}
	if slices.Contains(ports, 0) || len(slices.Compact(slices.Sorted(slices.Values(ports)))) != 4 {
		t.Fatalf("ports not distinct and set: %v", ports)
	}
	user := s.AddUser(t, "alice")

	// The CA file verifies the server under each of its names.
	for _, name := range []string{"127.0.0.1", "localhost"} {
		c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: caConfig(t, s.CAFile, name)})
		if err != nil {
			t.Fatalf("imaps as %s: %v", name, err)
		}
		if err := c.Login(user, Password).Wait(); err != nil {
			t.Fatalf("login over imaps as %s: %v", name, err)
		}
		c.Close()
	}
	// STARTTLS on the plain port works too.
	c, err := imapclient.DialStartTLS(s.IMAPAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Login(user, Password).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	c.Close()

	// A second server runs next to the first, with its own CA: neither
	// trusts the other's certificate.
	s2 := Start(t)
	if s2.Dir == s.Dir || s2.IMAPSPort == s.IMAPSPort {
		t.Fatalf("second server shares dir or port with the first")
	}
	_, err = imapclient.DialTLS(s2.IMAPSAddr(), &imapclient.Options{TLSConfig: caConfig(t, s.CAFile, "127.0.0.1")})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("second server with the first server's CA: err = %v, want a certificate error", err)
	}
	if !s.Running() || !s2.Running() {
		t.Fatalf("a server stopped early")
	}
}

func TestStopsCleanly(t *testing.T) {
	var s *Server
	t.Run("inner", func(t *testing.T) { s = Start(t) })
	if s.Running() {
		t.Fatalf("server still running after its test ended")
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) && os.Getenv(KeepEnv) != "1" {
		t.Fatalf("server directory %s not removed: %v", s.Dir, err)
	}
	if conn, err := net.DialTimeout("tcp", s.IMAPAddr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("something still listens on %s", s.IMAPAddr())
	}
}

// TestImportFetchIMAP is the harness's main proof: what Import seeds is what
// Fetch returns, and what Fetch returns is byte for byte what an IMAP client
// gets, over IMAPS and plain IMAP.
func TestImportFetchIMAP(t *testing.T) {
	s := Start(t)
	user := s.AddUser(t, "bob")
	folders := []string{"INBOX", "Sent", "a", "a/b", "Entwürfe"}
	seed := GenMessages(42, 200, GenOptions{Folders: folders})

	t0 := time.Now()
	s.Import(t, user, seed)
	t.Logf("Import of %d messages took %v", len(seed), time.Since(t0))

	got := s.Folders(t, user)
	for _, f := range append(slices.Clone(folders), "Drafts", "Trash", "Junk", "Archive") {
		if !slices.Contains(got, f) {
			t.Errorf("Folders = %q, missing %q", got, f)
		}
	}
	if len(got) != len(folders)+4 {
		t.Errorf("Folders = %q, want exactly %d", got, len(folders)+4)
	}

	byFolder := map[string][]Message{}
	for _, m := range seed {
		byFolder[m.Folder] = append(byFolder[m.Folder], m)
	}
	fetched := map[string][]Message{}
	for _, f := range folders {
		want := byFolder[f]
		unseen := 0
		for i := range want {
			want[i].UID = uint32(i + 1) // slice order gives UID order
			if !slices.Contains(want[i].Flags, `\Seen`) {
				unseen++
			}
		}
		n, u, uidvalidity := s.Status(t, user, f)
		if n != len(want) || u != unseen || uidvalidity == 0 {
			t.Errorf("Status(%q) = %d, %d, %d; want %d messages, %d unseen, non-zero UIDVALIDITY",
				f, n, u, uidvalidity, len(want), unseen)
		}
		t0 := time.Now()
		fetched[f] = s.Fetch(t, user, f)
		t.Logf("Fetch %q: %d messages in %v", f, len(fetched[f]), time.Since(t0))
		sameMessages(t, "Fetch "+f+" vs seed", fetched[f], want, true)
	}

	for _, useTLS := range []bool{true, false} {
		c := login(t, s, user, useTLS)
		for _, f := range folders {
			sameMessages(t, fmt.Sprintf("IMAP (tls=%v) %s vs Fetch", useTLS, f), imapMessages(t, c, f), fetched[f], true)
		}
	}
	// BODY.PEEK[] and doveadm fetch leave \Seen alone.
	for _, f := range folders {
		_, u, _ := s.Status(t, user, f)
		want := 0
		for _, m := range fetched[f] {
			if !slices.Contains(m.Flags, `\Seen`) {
				want++
			}
		}
		if u != want {
			t.Errorf("%s: %d unseen after fetching, want %d", f, u, want)
		}
	}
}

// TestFetchMatchesIMAPForOddBytes saves messages that Dovecot does not
// store verbatim and checks that Fetch still predicts the IMAP bytes.
func TestFetchMatchesIMAPForOddBytes(t *testing.T) {
	s := Start(t)
	user := s.AddUser(t, "carol")
	date := time.Date(2020, 2, 29, 23, 59, 58, 0, time.FixedZone("", -5*3600))
	odd := [][]byte{
		[]byte("Subject: crlf\r\n\r\nbody\r\n"),
		[]byte("Subject: lf only\n\nline one\nline two\n"),
		[]byte("Subject: mixed\r\n\nlf after crlf\n\r\nend"),
		[]byte("Subject: bare cr\r\n\r\nbare\rcr and cr at end\r"),
		[]byte("Subject: cr cr lf\r\n\r\nx\r\r\ny\r\n"),
		[]byte("Subject: nul\r\n\r\nnul\x00byte\r\n"),
		[]byte("Subject: form feed\r\n\r\n\f\n\f\r\nuid: 1\n"),
		[]byte("\nSubject: starts with lf\r\n\r\n"),
		[]byte("Subject: no final newline\r\n\r\nlast"),
	}
	for i, raw := range odd {
		uid := s.Save(t, user, "INBOX", raw, []string{`\Seen`, "$Forwarded"}, date)
		if uid != uint32(i+1) {
			t.Fatalf("Save #%d returned UID %d", i, uid)
		}
	}
	fetched := s.Fetch(t, user, "INBOX")
	c := login(t, s, user, false)
	sameMessages(t, "IMAP vs Fetch", imapMessages(t, c, "INBOX"), fetched, true)
	for i, m := range fetched {
		if !m.Date.Equal(date) {
			t.Errorf("#%d: date %v, want %v", i, m.Date, date)
		}
		if !slices.Equal(m.Flags, []string{"$Forwarded", `\Seen`}) {
			t.Errorf("#%d: flags %q", i, m.Flags)
		}
	}
	// CRLF input comes back unchanged; LF-only input comes back as CRLF.
	if !bytes.Equal(fetched[0].Raw, odd[0]) {
		t.Errorf("CRLF message changed: %q", fetched[0].Raw)
	}
	if want := []byte("Subject: lf only\r\n\r\nline one\r\nline two\r\n"); !bytes.Equal(fetched[1].Raw, want) {
		t.Errorf("LF message: %q, want %q", fetched[1].Raw, want)
	}
}

func TestAccountHelpers(t *testing.T) {
	s := Start(t)
	alice := s.AddUser(t, "alice")
	c := login(t, s, alice, false)

	// A user added while the server runs (and after a login) can log in.
	dave := s.AddUserWithPassword(t, "dave@example.org", `pa ss"word\`)
	dc, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	if err := dc.Login(dave, `pa ss"word\`).Wait(); err != nil {
		t.Fatalf("login of a user added later: %v", err)
	}

	s.CreateFolder(t, alice, "Projects/2024")
	s.CreateFolder(t, alice, "Projects/2024") // idempotent
	if f := s.Folders(t, alice); !slices.Contains(f, "Projects/2024") || slices.Contains(f, "Projects") {
		t.Fatalf("Folders = %q: want Projects/2024 without the placeholder parent", f)
	}

	date := time.Date(2019, 7, 1, 12, 0, 0, 0, time.UTC)
	var uids []uint32
	for i := 0; i < 3; i++ {
		uids = append(uids, s.Save(t, alice, "Projects/2024", []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)), nil, date))
	}
	if !slices.Equal(uids, []uint32{1, 2, 3}) {
		t.Fatalf("UIDs %v", uids)
	}
	n, unseen, v1 := s.Status(t, alice, "Projects/2024")
	if n != 3 || unseen != 3 {
		t.Fatalf("Status = %d, %d", n, unseen)
	}

	s.SetFlags(t, alice, "Projects/2024", 2, []string{`\Seen`, `\flagged`, "Work"})
	s.SetFlags(t, alice, "Projects/2024", 3, []string{`\Seen`})
	s.SetFlags(t, alice, "Projects/2024", 3, nil)
	got := s.Fetch(t, alice, "Projects/2024")
	if !slices.Equal(got[1].Flags, []string{"Work", `\Flagged`, `\Seen`}) || len(got[2].Flags) != 0 {
		t.Fatalf("flags after SetFlags: %q, %q", got[1].Flags, got[2].Flags)
	}
	imapGot := imapMessages(t, c, "Projects/2024")
	sameMessages(t, "IMAP after SetFlags", imapGot, got, true)

	s.Expunge(t, alice, "Projects/2024", 1)
	if n, unseen, _ := s.Status(t, alice, "Projects/2024"); n != 2 || unseen != 1 {
		t.Fatalf("after Expunge: %d messages, %d unseen", n, unseen)
	}

	v2 := s.ResetUIDValidity(t, alice, "Projects/2024")
	if v2 == v1 {
		t.Fatalf("UIDVALIDITY unchanged: %d", v2)
	}
	c2 := login(t, s, alice, true)
	sd, err := c2.Select("Projects/2024", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.UIDValidity != v2 {
		t.Fatalf("IMAP sees UIDVALIDITY %d, want %d", sd.UIDValidity, v2)
	}
	if uids := s.Fetch(t, alice, "Projects/2024"); uids[0].UID != 2 || uids[1].UID != 3 {
		t.Fatalf("UIDs after UIDVALIDITY change: %d, %d", uids[0].UID, uids[1].UID)
	}
	s.Kick(t, alice)
}

func TestPOP3(t *testing.T) {
	s := Start(t)
	user := s.AddUser(t, "erin")
	msg := []byte("Subject: pop\r\n\r\nhello\r\n.starts with a dot\r\n")
	uid := s.Save(t, user, "INBOX", msg, nil, time.Time{})
	_, _, uidvalidity := s.Status(t, user, "INBOX")

	for _, useTLS := range []bool{false, true} {
		var conn net.Conn
		var err error
		if useTLS {
			conn, err = tls.Dial("tcp", s.POP3SAddr(), caConfig(t, s.CAFile, "localhost"))
		} else {
			conn, err = net.Dial("tcp", s.POP3Addr())
		}
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		cmd := func(line string) string {
			t.Helper()
			if line != "" {
				fmt.Fprintf(conn, "%s\r\n", line)
			}
			resp, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(resp, "+OK") {
				t.Fatalf("POP3 %q: %q %v", line, resp, err)
			}
			return strings.TrimSpace(resp)
		}
		cmd("")
		cmd("USER " + user)
		cmd("PASS " + Password)
		if got, want := cmd("UIDL 1"), fmt.Sprintf("+OK 1 %08x%08x", uid, uidvalidity); got != want {
			t.Errorf("UIDL = %q, want %q", got, want)
		}
		cmd("RETR 1")
		var body bytes.Buffer
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == ".\r\n" {
				break
			}
			body.WriteString(strings.TrimPrefix(line, "."))
		}
		if !bytes.Equal(body.Bytes(), msg) {
			t.Errorf("RETR: %q, want %q", body.Bytes(), msg)
		}
		cmd("QUIT")
	}
	// RETR does not mark the message \Seen.
	if _, unseen, _ := s.Status(t, user, "INBOX"); unseen != 1 {
		t.Errorf("unseen = %d after POP3 RETR, want 1", unseen)
	}
}

func TestSentItemsAndNoAutoCreate(t *testing.T) {
	s := StartWith(t, Options{SentName: "Sent Items"})
	user := s.AddUser(t, "frank")
	c := login(t, s, user, true)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrSent) {
			sent = append(sent, l.Mailbox)
		}
	}
	if !slices.Equal(sent, []string{"Sent Items"}) {
		t.Fatalf(`\Sent folders = %q, want ["Sent Items"]`, sent)
	}
	if f := s.Folders(t, user); !slices.Contains(f, "Sent Items") || slices.Contains(f, "Sent") {
		t.Fatalf("Folders = %q", f)
	}

	bare := StartWith(t, Options{NoAutoCreate: true})
	user = bare.AddUser(t, "grace")
	if f := bare.Folders(t, user); !slices.Equal(f, []string{"INBOX"}) {
		t.Fatalf("Folders without auto-create = %q, want [INBOX]", f)
	}
	bare.CreateFolder(t, user, "Sent")
	c = login(t, bare, user, false)
	list, err = c.List("", "Sent", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil || len(list) != 1 || !slices.Contains(list[0].Attrs, imap.MailboxAttrSent) {
		t.Fatalf("created Sent is not \\Sent: %+v %v", list, err)
	}
}

// TestFailedLoginsStayFast checks that failed logins do not slow down
// later logins from 127.0.0.1: with Dovecot's per-IP auth penalty, the
// second failure and the good login would each wait 2 s or more.
func TestFailedLoginsStayFast(t *testing.T) {
	s := Start(t)
	user := s.AddUser(t, "heidi")
	t0 := time.Now()
	for i := 0; i < 2; i++ {
		c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Login(user, "wrong").Wait()
		c.Close()
		if err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
	}
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 1900*time.Millisecond {
		t.Fatalf("2 failed logins and 1 good one took %v", d)
	} else {
		t.Logf("2 failed logins and 1 good one took %v", d)
	}
}

func TestGenMessages(t *testing.T) {
	opts := GenOptions{Folders: []string{"INBOX", "Sent", "Drafts", "x/y"}, DeletedRate: 0.05, NoMessageIDRate: 0.05}
	a := GenMessages(7, 300, opts)
	b := GenMessages(7, 300, opts)
	c := GenMessages(8, 300, opts)
	if len(a) != 300 {
		t.Fatalf("%d messages", len(a))
	}
	same := true
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) || !slices.Equal(a[i].Flags, b[i].Flags) || !a[i].Date.Equal(b[i].Date) || a[i].Folder != b[i].Folder {
			t.Fatalf("message %d differs between runs with the same seed", i)
		}
		same = same && bytes.Equal(a[i].Raw, c[i].Raw)
	}
	if same {
		t.Fatal("different seeds gave the same messages")
	}

	ids := map[string]bool{}
	var multipart, attachments, deleted, noID, drafts int
	minSize, maxSize := 1<<30, 0
	years := map[int]bool{}
	for i, m := range a {
		if i > 0 && m.Date.Before(a[i-1].Date) {
			t.Fatalf("message %d is older than %d", i, i-1)
		}
		if m.Date.Nanosecond() != 0 {
			t.Fatalf("message %d: date has sub-second part", i)
		}
		years[m.Date.Year()] = true
		if bytes.Contains(bytes.ReplaceAll(m.Raw, []byte("\r\n"), nil), []byte("\n")) ||
			bytes.Contains(bytes.ReplaceAll(m.Raw, []byte("\r\n"), nil), []byte("\r")) {
			t.Fatalf("message %d has a bare LF or CR", i)
		}
		if !bytes.HasSuffix(m.Raw, []byte("\r\n")) {
			t.Fatalf("message %d does not end in CRLF", i)
		}
		for _, l := range bytes.Split(m.Raw, []byte("\r\n")) {
			if len(l) > 998 {
				t.Fatalf("message %d has a line of %d bytes", i, len(l))
			}
		}
		header, body, _ := bytes.Cut(m.Raw, []byte("\r\n\r\n"))
		if !isASCII(string(header)) {
			t.Fatalf("message %d: raw 8-bit bytes in the header", i)
		}
		if bytes.Contains(header, []byte("Content-Transfer-Encoding: 7bit")) && !isASCII(string(body)) {
			t.Fatalf("message %d: 8-bit bytes in a 7bit body", i)
		}
		pm, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("message %d does not parse: %v", i, err)
		}
		for _, h := range []string{"From", "To", "Subject", "Date"} {
			if pm.Header.Get(h) == "" {
				t.Fatalf("message %d: no %s header", i, h)
			}
		}
		if _, err := pm.Header.Date(); err != nil {
			t.Fatalf("message %d: Date: %v", i, err)
		}
		if _, err := pm.Header.AddressList("From"); err != nil {
			t.Fatalf("message %d: From: %v", i, err)
		}
		id := pm.Header.Get("Message-ID")
		if id == "" {
			noID++
		} else if ids[id] {
			t.Fatalf("message %d: duplicate Message-ID %s", i, id)
		}
		ids[id] = true
		ct := pm.Header.Get("Content-Type")
		if strings.HasPrefix(ct, "multipart/") {
			multipart++
		}
		if strings.HasPrefix(ct, "multipart/mixed") {
			attachments++
		}
		if slices.Contains(m.Flags, `\Deleted`) {
			deleted++
		}
		if slices.Contains(m.Flags, `\Draft`) {
			drafts++
			if m.Folder != "Drafts" {
				t.Fatalf("message %d: \\Draft outside Drafts", i)
			}
		}
		if !slices.Equal(m.Flags, NormalizeFlags(m.Flags)) {
			t.Fatalf("message %d: flags not normalised: %q", i, m.Flags)
		}
		minSize, maxSize = min(minSize, len(m.Raw)), max(maxSize, len(m.Raw))
	}
	t.Logf("sizes %d..%d bytes, %d multipart, %d with attachments, %d \\Deleted, %d without Message-ID, %d years",
		minSize, maxSize, multipart, attachments, deleted, noID, len(years))
	if attachments == 0 || multipart <= attachments || deleted == 0 || noID == 0 || drafts == 0 || len(years) < 8 || maxSize < 20*minSize {
		t.Fatal("generated mail is not varied enough")
	}
}
