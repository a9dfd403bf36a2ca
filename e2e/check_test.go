package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/testbed"
)

// sums maps a folder to the sorted SHA-256 (hex) of its messages: a
// multiset, so a lost message and a doubled one both show.
type sums map[string][]string

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// total counts the messages of every folder.
func (s sums) total() int {
	n := 0
	for _, v := range s {
		n += len(v)
	}
	return n
}

// all is the multiset over every folder.
func (s sums) all() []string {
	var out []string
	for _, v := range s {
		out = append(out, v...)
	}
	slices.Sort(out)
	return out
}

// seed imports n generated messages into user's folders and returns what
// the server now holds, read back through doveadm.
func seed(t testing.TB, s *testbed.Server, user string, seedValue int64, n int, folders ...string) sums {
	t.Helper()
	msgs := testbed.GenMessages(seedValue, n, testbed.GenOptions{Folders: folders, MaxAttachment: 256 << 10})
	s.Import(t, user, msgs)
	return serverSums(t, s, user, folders...)
}

// serverSums reads folders of a Dovecot account through doveadm: the bytes
// exactly as IMAP serves them.
func serverSums(t testing.TB, s *testbed.Server, user string, folders ...string) sums {
	t.Helper()
	out := sums{}
	for _, f := range folders {
		out[f] = []string{}
		for _, m := range s.Fetch(t, user, f) {
			out[f] = append(out[f], sha(m.Raw))
		}
		slices.Sort(out[f])
	}
	return out
}

// archiveSums opens an archive read-only, as restore and verify do, and
// hashes every message of every selectable folder.
func archiveSums(t testing.TB, spec string) sums {
	t.Helper()
	a, err := archive.Open(context.Background(), spec, archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	defer a.Close()
	folders, err := a.Folders()
	if err != nil {
		t.Fatalf("folders of %s: %v", spec, err)
	}
	out := sums{}
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		msgs, err := a.Messages(f.Name)
		if err != nil {
			t.Fatalf("messages of %s in %s: %v", f.Name, spec, err)
		}
		out[f.Name] = []string{}
		for _, m := range msgs {
			rc, err := a.Open(f.Name, m.Key)
			if err != nil {
				t.Fatalf("open %s/%s: %v", f.Name, m.Key, err)
			}
			h := sha256.New()
			_, err = io.Copy(h, rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read %s/%s: %v", f.Name, m.Key, err)
			}
			out[f.Name] = append(out[f.Name], hex.EncodeToString(h.Sum(nil)))
		}
		slices.Sort(out[f.Name])
	}
	return out
}

// archiveSumsIfAny is archiveSums, or nil before the archive exists (a run
// killed before it wrote .mailark/archive.json, the file that makes a
// directory an archive; the next run must cope with such a directory).
func archiveSumsIfAny(t testing.TB, spec string) sums {
	t.Helper()
	_, root, _ := strings.Cut(spec, ":")
	if _, err := os.Stat(filepath.Join(root, ".mailark", "archive.json")); err != nil {
		return nil
	}
	return archiveSums(t, spec)
}

// deletedUnarchived counts the messages of original (a sorted multiset)
// that are neither left on the server nor in the archive.
func deletedUnarchived(original, left, archived []string) int {
	union := append(append([]string{}, left...), archived...)
	slices.Sort(union)
	missing, _ := multisetDiff(original, union)
	return missing
}

// diffSums describes how got differs from want per folder; "" when every
// folder of want holds exactly the same multiset in got.
func diffSums(got, want sums) string {
	var b strings.Builder
	names := make([]string, 0, len(want))
	for f := range want {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		missing, extra := multisetDiff(want[f], got[f])
		if missing+extra > 0 {
			fmt.Fprintf(&b, "folder %q: %d messages, want %d (%d missing, %d extra or doubled); ", f, len(got[f]), len(want[f]), missing, extra)
		}
	}
	return b.String()
}

// multisetDiff counts elements of want missing from got and elements of
// got beyond want (both sorted).
func multisetDiff(want, got []string) (missing, extra int) {
	i, j := 0, 0
	for i < len(want) && j < len(got) {
		switch {
		case want[i] == got[j]:
			i++
			j++
		case want[i] < got[j]:
			missing++
			i++
		default:
			extra++
			j++
		}
	}
	return missing + len(want) - i, extra + len(got) - j
}

// dovecotLocation is the mail_location that opens a mailark archive
// directly (docs/archive.md); INDEX=MEMORY keeps Dovecot from writing its
// own index files into the copy.
func dovecotLocation(format, root string) string {
	if format == "maildir" {
		return "maildir:" + root + ":LAYOUT=fs:INBOX=" + root + "/INBOX:INDEX=MEMORY"
	}
	return "mbox:" + root + ":INBOX=" + root + "/INBOX:INDEX=MEMORY"
}

// dovecotReads points Dovecot (doveadm as user) at a copy of the archive and
// returns, for each folder of want, the hashes of the messages as Dovecot
// reads them (maildir: the stored bytes). Dovecot names a folder by its
// path below the root (it knows nothing of Thunderbird's ".sbd"
// directories, so an mbox folder a/b is a.sbd/b to it).
func dovecotReads(t testing.TB, s *testbed.Server, user, format, root string, want sums, paths map[string]string) sums {
	t.Helper()
	copyRoot := s.CopyForDovecot(t, root)
	loc := dovecotLocation(format, copyRoot)
	out, err := s.RunDoveadm(nil, "-o", "mail_location="+loc, "mailbox", "list", "-u", user)
	if err != nil {
		t.Fatalf("Dovecot cannot list the %s archive: %v", format, err)
	}
	listed := strings.Split(strings.TrimSpace(string(out)), "\n")
	got := sums{}
	for f := range want {
		name := paths[f]
		if f == "INBOX" {
			name = "INBOX"
		}
		if !slices.Contains(listed, name) {
			t.Errorf("Dovecot does not list folder %q of the %s archive (it lists %q)", name, format, listed)
			continue
		}
		raw, err := s.RunDoveadm(nil, "-o", "mail_location="+loc, "-f", "pager", "fetch", "-u", user,
			"size.physical text", "mailbox", name, "all")
		if err != nil {
			t.Fatalf("Dovecot cannot read folder %q of the %s archive: %v", name, format, err)
		}
		texts, err := parsePager(raw)
		if err != nil {
			t.Fatalf("Dovecot output for %q: %v", name, err)
		}
		got[f] = []string{}
		for _, text := range texts {
			got[f] = append(got[f], sha(text))
		}
		slices.Sort(got[f])
	}
	return got
}

// parsePager splits doveadm's pager output for "size.physical text".
func parsePager(out []byte) ([][]byte, error) {
	var texts [][]byte
	rest := out
	for len(rest) > 0 {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		v, isSize := bytes.CutPrefix(line, []byte("size.physical: "))
		if !ok || !isSize {
			return nil, fmt.Errorf("expected size.physical, got %.60q", rest)
		}
		size, err := strconv.Atoi(string(v))
		if err != nil {
			return nil, err
		}
		line, after, ok = bytes.Cut(after, []byte("\n"))
		if !ok || !bytes.HasPrefix(line, []byte("text:")) {
			return nil, fmt.Errorf("expected text, got %.60q", after)
		}
		if len(after) < size {
			return nil, fmt.Errorf("text shorter than %d", size)
		}
		texts = append(texts, after[:size])
		rest = bytes.TrimPrefix(after[size:], []byte("\f\n"))
	}
	return texts, nil
}

// pythonReader prints, per mailbox Python's mailbox module finds under root,
// the SHA-256 of each message's bytes (maildir: the file; mbox: the message
// without its From line, as Python returns it).
const pythonReader = `
import hashlib, json, mailbox, os, sys
fmt, root = sys.argv[1], sys.argv[2]
out = {}
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    rel = os.path.relpath(dirpath, root)
    if fmt == 'maildir':
        if 'cur' in dirnames:
            box = mailbox.Maildir(dirpath, factory=None, create=False)
            out[rel] = sorted(hashlib.sha256(box.get_bytes(k)).hexdigest() for k in box.keys())
            dirnames[:] = [d for d in dirnames if d not in ('cur', 'new', 'tmp')]
    else:
        for name in sorted(filenames):
            box = mailbox.mbox(os.path.join(dirpath, name), create=False)
            key = os.path.normpath(os.path.join(rel, name))
            out[key] = sorted(hashlib.sha256(box.get_bytes(k)).hexdigest() for k in box.keys())
json.dump(out, sys.stdout)
`

// pythonReads runs pythonReader over an archive tree.
func pythonReads(t testing.TB, format, root string) sums {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		skipOrFail(t, "python3 not installed; cannot check that Python's mailbox reads the archive")
	}
	cmd := exec.Command(py, "-c", pythonReader, format, root)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Python's mailbox cannot read the %s archive: %v\n%s", format, err, stderr.String())
	}
	got := sums{}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output: %v", err)
	}
	return got
}

// checkForeignReaders proves an archive is an ordinary mail tree: Dovecot
// and Python's mailbox each find every message. For maildir both read the
// stored bytes, which must equal what mailark returns; for mbox the From
// line and the flag headers are the reader's business, so the counts per
// folder must match.
func checkForeignReaders(t testing.TB, s *testbed.Server, user, format, root string, want sums) {
	t.Helper()
	paths := archivePaths(t, format+":"+root)
	dove := dovecotReads(t, s, user, format, root, want, paths)
	raw := pythonReads(t, format, root)
	py := sums{}
	for name, path := range paths {
		py[name] = raw[filepath.FromSlash(path)]
	}
	if format == "maildir" {
		if d := diffSums(dove, want); d != "" {
			t.Errorf("Dovecot reading the maildir archive: %s", d)
		}
		if d := diffSums(py, want); d != "" {
			t.Errorf("Python's mailbox reading the maildir archive: %s", d)
		}
		return
	}
	for f, w := range want {
		if len(dove[f]) != len(w) {
			t.Errorf("Dovecot reads %d messages in mbox folder %q, want %d", len(dove[f]), f, len(w))
		}
		if len(py[f]) != len(w) {
			t.Errorf("Python reads %d messages in mbox file %q, want %d", len(py[f]), paths[f], len(w))
		}
	}
}

// archivePaths maps each folder of an archive to its path below the root.
func archivePaths(t testing.TB, spec string) map[string]string {
	t.Helper()
	a, err := archive.Open(context.Background(), spec, archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	defer a.Close()
	folders, err := a.Folders()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range folders {
		out[f.Name] = f.Path
	}
	return out
}

// fileLines reads a file's lines (for logs and ledgers).
func fileLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
