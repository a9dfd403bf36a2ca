package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Message is one message of a mailbox, as seeded or as read back.
type Message struct {
	Folder string    // folder name as IMAP shows it, "/" between levels
	Raw    []byte    // the message bytes (as IMAP serves them when read back)
	Flags  []string  // system flags and keywords, without \Recent, sorted
	Date   time.Time // INTERNALDATE, whole seconds
	UID    uint32    // 0 when seeding
}

// doveadmTimeout bounds one doveadm run; seeding 250 MB takes seconds.
const doveadmTimeout = 5 * time.Minute

// doveadm exit codes that some helpers expect.
const (
	exitDataErr = 65 // e.g. the mailbox already exists
	exitNoUser  = 68 // e.g. the mailbox does not exist
)

// DoveadmError is a failed doveadm run.
type DoveadmError struct {
	Args     []string
	ExitCode int
	Stderr   string
}

func (e *DoveadmError) Error() string {
	return fmt.Sprintf("doveadm %s: exit status %d: %s", strings.Join(e.Args, " "), e.ExitCode, strings.TrimSpace(e.Stderr))
}

// RunDoveadm runs doveadm against this instance (doveadm -c Config ARGS...)
// and returns its standard output. Errors are *DoveadmError when doveadm
// ran and failed.
func (s *Server) RunDoveadm(stdin io.Reader, args ...string) ([]byte, error) {
	// A wedged instance must fail the test, not hang it until the test
	// binary's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), doveadmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bins.doveadm, append([]string{"-c", s.Config}, args...)...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("doveadm %s: no answer within %v", strings.Join(args, " "), doveadmTimeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &DoveadmError{Args: args, ExitCode: ee.ExitCode(), Stderr: stderr.String()}
	}
	if err != nil {
		return nil, fmt.Errorf("doveadm %s: %w", strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// Doveadm is RunDoveadm that fails the test on error.
func (s *Server) Doveadm(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := s.RunDoveadm(nil, args...)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return out
}

// AddUser creates a mail account with the password Password and returns
// its name. Users can be added while the server runs: Dovecot re-reads the
// passwd-file when it changes.
func (s *Server) AddUser(t testing.TB, name string) string {
	t.Helper()
	return s.AddUserWithPassword(t, name, Password)
}

// AddUserWithPassword is AddUser with a chosen password (e.g. one that needs
// IMAP quoting).
func (s *Server) AddUserWithPassword(t testing.TB, name, password string) string {
	t.Helper()
	if err := validUserName(name); err != nil {
		t.Fatalf("testbed: AddUser: %v", err)
	}
	if password == "" || strings.ContainsAny(password, ":\r\n\x00") {
		t.Fatalf("testbed: AddUser %s: the passwd-file cannot hold an empty password or one with ':', CR, LF or NUL", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[name] {
		t.Fatalf("testbed: AddUser: user %q exists already", name)
	}
	home := filepath.Join(s.Dir, "home", name)
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatalf("testbed: AddUser: %v", err)
	}
	if err := os.Chown(home, s.vmail.uid, s.vmail.gid); err != nil {
		t.Fatalf("testbed: AddUser: %v", err)
	}
	line := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", name, password, s.vmail.uid, s.vmail.gid, home)
	// Write under a temporary name and rename, so the auth process never
	// reads half a line.
	file := filepath.Join(s.passwdDir, name)
	tmp := filepath.Join(s.passwdDir, "."+name+".tmp") // user names cannot start with '.'
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		t.Fatalf("testbed: AddUser: %v", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatalf("testbed: AddUser: %v", err)
	}
	s.users[name] = true
	return name
}

// validUserName keeps names usable both in the passwd-file and as the %u
// directory name of mail_location.
func validUserName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("user name %q: must have 1 to 64 characters", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@+-", r)
		if !ok {
			return fmt.Errorf("user name %q: only letters, digits and . _ @ + - are allowed", name)
		}
	}
	if name[0] == '.' || strings.Contains(name, "..") {
		return fmt.Errorf("user name %q: must not start with '.' or contain '..'", name)
	}
	return nil
}

// CreateFolder creates (and subscribes) a folder; nested folders use "/".
// It is not an error if the folder exists.
func (s *Server) CreateFolder(t testing.TB, user, folder string) {
	t.Helper()
	_, err := s.RunDoveadm(nil, "mailbox", "create", "-s", "-u", user, folder)
	var de *DoveadmError
	if errors.As(err, &de) && de.ExitCode == exitDataErr && strings.Contains(de.Stderr, "already exists") {
		return
	}
	if err != nil {
		t.Fatalf("testbed: CreateFolder %s %q: %v", user, folder, err)
	}
}

// Folders returns the selectable folders of the account, sorted, as an IMAP
// LIST shows them: INBOX and the auto-created special-use folders are
// included even before anything created them on disk; parents that exist
// only as part of a deeper name ("a" of "a/b" in Maildir++) are not.
func (s *Server) Folders(t testing.TB, user string) []string {
	t.Helper()
	out := s.Doveadm(t, "mailbox", "list", "-u", user)
	var listed []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			listed = append(listed, l)
		}
	}
	// With a pattern, STATUS iterates the mailboxes that exist, which
	// leaves out the placeholder parents and the not yet created
	// auto-created folders.
	out = s.Doveadm(t, "-f", "tab", "mailbox", "status", "-u", user, "messages", "*")
	rows, err := parseTab(out)
	if err != nil {
		t.Fatalf("testbed: Folders %s: %v", user, err)
	}
	exists := map[string]bool{"INBOX": true}
	for _, r := range rows {
		exists[r["mailbox"]] = true
	}
	if !s.opts.NoAutoCreate {
		for _, f := range s.specialFolders() {
			exists[f.name] = true
		}
	}
	var folders []string
	for _, name := range listed {
		if exists[name] {
			folders = append(folders, name)
		}
	}
	sort.Strings(folders)
	return folders
}

// Status returns the message count, the number of messages without \Seen
// and the UIDVALIDITY of a folder.
func (s *Server) Status(t testing.TB, user, folder string) (messages, unseen int, uidvalidity uint32) {
	t.Helper()
	st, err := s.status(user, folder)
	if err != nil {
		t.Fatalf("testbed: Status %s %q: %v", user, folder, err)
	}
	return int(st["messages"]), int(st["unseen"]), uint32(st["uidvalidity"])
}

// UIDNext returns the UID the next message of the folder will get.
func (s *Server) UIDNext(t testing.TB, user, folder string) uint32 {
	t.Helper()
	st, err := s.status(user, folder)
	if err != nil {
		t.Fatalf("testbed: UIDNext %s %q: %v", user, folder, err)
	}
	return uint32(st["uidnext"])
}

func (s *Server) status(user, folder string) (map[string]uint64, error) {
	out, err := s.RunDoveadm(nil, "-f", "tab", "mailbox", "status", "-u", user,
		"messages unseen uidvalidity uidnext highestmodseq", folder)
	if err != nil {
		return nil, err
	}
	rows, err := parseTab(out)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r["mailbox"] != folder && len(rows) > 1 {
			continue
		}
		st := map[string]uint64{}
		for k, v := range r {
			if k == "mailbox" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("status field %s=%q: %v", k, v, err)
			}
			st[k] = n
		}
		return st, nil
	}
	return nil, fmt.Errorf("no status for %q in %q", folder, out)
}

// parseTab parses doveadm's "-f tab" output: a header line, then one line
// per record.
func parseTab(out []byte) ([]map[string]string, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil, nil
	}
	header := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[1:] {
		cols := strings.Split(l, "\t")
		if len(cols) != len(header) {
			return nil, fmt.Errorf("doveadm tab output: %d columns, header has %d: %q", len(cols), len(header), l)
		}
		r := map[string]string{}
		for i, h := range header {
			r[h] = cols[i]
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// Save stores one message in a folder (created if needed) with the given
// flags and INTERNALDATE (now when zero) and returns its UID.
func (s *Server) Save(t testing.TB, user, folder string, msg []byte, flags []string, internalDate time.Time) uint32 {
	t.Helper()
	s.Import(t, user, []Message{{Folder: folder, Raw: msg, Flags: flags, Date: internalDate}})
	return s.UIDNext(t, user, folder) - 1
}

// ResetUIDValidity gives the folder a new UIDVALIDITY, as a server does
// after rebuilding a mailbox, and returns it. Messages and UIDs stay; a
// client must nevertheless treat every UID it knew as invalid.
func (s *Server) ResetUIDValidity(t testing.TB, user, folder string) uint32 {
	t.Helper()
	_, _, old := s.Status(t, user, folder)
	next := old + 1
	if next == 0 {
		next = 1
	}
	s.Doveadm(t, "mailbox", "update", "-u", user, "--uid-validity", strconv.FormatUint(uint64(next), 10), folder)
	if _, _, got := s.Status(t, user, folder); got != next {
		t.Fatalf("testbed: ResetUIDValidity %s %q: UIDVALIDITY is %d, want %d", user, folder, got, next)
	}
	return next
}

// SetFlags replaces the flags (system flags and keywords) of one message.
func (s *Server) SetFlags(t testing.TB, user, folder string, uid uint32, flags []string) {
	t.Helper()
	for _, f := range flags {
		if err := validFlag(f); err != nil {
			t.Fatalf("testbed: SetFlags: %v", err)
		}
	}
	s.requireUID(t, user, folder, uid)
	s.Doveadm(t, "flags", "replace", "-u", user, strings.Join(flags, " "),
		"mailbox", folder, "uid", strconv.FormatUint(uint64(uid), 10))
}

// Expunge removes messages by UID.
func (s *Server) Expunge(t testing.TB, user, folder string, uids ...uint32) {
	t.Helper()
	for _, uid := range uids {
		s.requireUID(t, user, folder, uid)
		s.Doveadm(t, "expunge", "-u", user, "mailbox", folder, "uid", strconv.FormatUint(uint64(uid), 10))
	}
}

// Kick disconnects all IMAP and POP3 sessions of the user.
func (s *Server) Kick(t testing.TB, user string) {
	t.Helper()
	s.Doveadm(t, "kick", user)
}

// requireUID fails the test when the folder has no message with that UID;
// doveadm itself silently does nothing for unknown UIDs.
func (s *Server) requireUID(t testing.TB, user, folder string, uid uint32) {
	t.Helper()
	out := s.Doveadm(t, "fetch", "-u", user, "uid", "mailbox", folder, "uid", strconv.FormatUint(uint64(uid), 10))
	if !bytes.Contains(out, []byte("uid: ")) {
		t.Fatalf("testbed: %s %q has no message with UID %d", user, folder, uid)
	}
}

// Fetch returns every message of a folder in UID order: the bytes exactly as
// an IMAP UID FETCH BODY.PEEK[] returns them, the flags without \Recent,
// INTERNALDATE and UID.
func (s *Server) Fetch(t testing.TB, user, folder string) []Message {
	t.Helper()
	st, err := s.status(user, folder)
	if err != nil {
		t.Fatalf("testbed: Fetch %s %q: %v", user, folder, err)
	}
	out := s.Doveadm(t, "-f", "pager", "fetch", "-u", user,
		"uid flags date.received.unixtime size.physical text", "mailbox", folder, "all")
	msgs, err := parseFetch(out, folder)
	if err != nil {
		t.Fatalf("testbed: Fetch %s %q: %v", user, folder, err)
	}
	if uint64(len(msgs)) != st["messages"] {
		t.Fatalf("testbed: Fetch %s %q: read %d messages, STATUS says %d", user, folder, len(msgs), st["messages"])
	}
	return msgs
}

// parseFetch reads doveadm's pager output for the fields
// "uid flags date.received.unixtime size.physical text". Records are
// separated by "\f\n"; "text" is the stored message, printed verbatim and
// without a terminator, so its length is taken from size.physical.
func parseFetch(out []byte, folder string) ([]Message, error) {
	var msgs []Message
	rest := out
	field := func(name string) (string, error) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", fmt.Errorf("expected %q, found %.40q", name, rest)
		}
		line := string(rest[:i])
		v, ok := strings.CutPrefix(line, name+":")
		if !ok {
			return "", fmt.Errorf("expected %q, found %.60q", name, line)
		}
		rest = rest[i+1:]
		return strings.TrimPrefix(v, " "), nil
	}
	for len(rest) > 0 {
		var m Message
		m.Folder = folder
		v, err := field("uid")
		if err != nil {
			return nil, err
		}
		uid, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("uid %q: %v", v, err)
		}
		m.UID = uint32(uid)
		if v, err = field("flags"); err != nil {
			return nil, err
		}
		m.Flags = NormalizeFlags(strings.Fields(v))
		if v, err = field("date.received.unixtime"); err != nil {
			return nil, err
		}
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("date %q: %v", v, err)
		}
		m.Date = time.Unix(secs, 0).UTC()
		if v, err = field("size.physical"); err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(v)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("size %q: %v", v, err)
		}
		if _, err = field("text"); err != nil {
			return nil, err
		}
		if len(rest) < size {
			return nil, fmt.Errorf("uid %d: text has %d bytes, size.physical says %d", m.UID, len(rest), size)
		}
		m.Raw = imapBytes(rest[:size])
		rest = rest[size:]
		if len(rest) > 0 {
			if !bytes.HasPrefix(rest, []byte("\f\n")) {
				return nil, fmt.Errorf("uid %d: text is longer than size.physical (%d): next bytes %.20q", m.UID, size, rest)
			}
			rest = rest[2:]
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// imapBytes turns a message as the maildir stores it into the bytes IMAP
// serves for BODY[]: Dovecot stores lines with LF (mail_save_crlf = no) and
// adds the CR of every LF that lacks one when serving, and IMAP (unlike
// BINARY) never sends NUL, which Dovecot replaces with 0x80. A lone CR is
// served unchanged.
func imapBytes(stored []byte) []byte {
	out := make([]byte, 0, len(stored)+len(stored)/30)
	for i, c := range stored {
		switch {
		case c == '\n' && (i == 0 || stored[i-1] != '\r'):
			out = append(out, '\r', '\n')
		case c == 0:
			out = append(out, 0x80)
		default:
			out = append(out, c)
		}
	}
	return out
}

// systemFlags maps IMAP system flags (as IMAP spells them) to their
// maildir info letters. \Recent cannot be stored.
var systemFlags = map[string]byte{
	`\Draft`:    'D',
	`\Flagged`:  'F',
	`\Answered`: 'R',
	`\Seen`:     'S',
	`\Deleted`:  'T',
}

// canonicalFlag spells system flags as IMAP does (they are
// case-insensitive) and leaves keywords alone.
func canonicalFlag(f string) string {
	for k := range systemFlags {
		if strings.EqualFold(f, k) {
			return k
		}
	}
	if strings.EqualFold(f, `\Recent`) {
		return `\Recent`
	}
	return f
}

// NormalizeFlags returns the flags with system flags spelt canonically,
// without \Recent and duplicates, sorted, so that flag lists from different
// sources compare with slices.Equal.
func NormalizeFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		f = canonicalFlag(f)
		if f == `\Recent` || f == "" {
			continue
		}
		out = append(out, f)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func validFlag(f string) error {
	if strings.HasPrefix(f, `\`) {
		if _, ok := systemFlags[canonicalFlag(f)]; !ok {
			return fmt.Errorf("flag %q: not a storable system flag", f)
		}
		return nil
	}
	if f == "" {
		return errors.New("empty flag")
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		// IMAP atom characters minus the list and quoting specials.
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return fmt.Errorf("keyword %q: %q is not allowed in an IMAP keyword", f, c)
		}
	}
	return nil
}
