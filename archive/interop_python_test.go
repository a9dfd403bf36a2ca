package archive

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// requireTool skips when an outside program is missing, except under CI
// where every interop test must run.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true but was not found", name)
		}
		t.Skipf("%s not installed; skipping the %s interop test", name, name)
	}
	return p
}

// pythonReader lists, for every mailbox under root, the Subject and flags
// of each message as Python's mailbox module reads them.
const pythonReader = `
import json, mailbox, os, sys
fmt, root = sys.argv[1], sys.argv[2]
out = {}
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if not d.startswith('.')]
    rel = os.path.relpath(dirpath, root)
    if fmt == 'maildir':
        if 'cur' in dirnames:
            box = mailbox.Maildir(dirpath, factory=None, create=False)
            out[rel] = [[m['Subject'], ''.join(sorted(m.get_flags()))] for m in box]
            dirnames[:] = [d for d in dirnames if d not in ('cur', 'new', 'tmp')]
    else:
        for name in filenames:
            box = mailbox.mbox(os.path.join(dirpath, name), create=False)
            key = os.path.normpath(os.path.join(rel, name))
            out[key] = [[m['Subject'], ''.join(sorted(m.get_flags()))] for m in box]
json.dump(out, sys.stdout)
`

func interopMessages() []struct {
	folder, msg string
	flags       []string
} {
	return []struct {
		folder, msg string
		flags       []string
	}{
		{"INBOX", "Subject: plain\r\n\r\nhello\r\n", nil},
		{"INBOX", "Subject: from lines\n\nFrom me\n>From you\n\nFrom x\n", []string{`\Seen`}},
		{"INBOX", "Subject: no newline\r\n\r\nend", []string{`\Seen`, `\Answered`, `\Flagged`}},
		{"INBOX", "Subject: blank lines\n\n\n\n", []string{`\Draft`, "Junk"}},
		{"INBOX", "Subject: nul\r\n\r\na\x00b\r\n", []string{`\Deleted`}},
		{"Sent", "Subject: sent one\r\n\r\nx\r\n", []string{`\Seen`}},
		{"Archive/2024", "Subject: nested\r\n\r\nx\r\n", nil},
		{"Entw\u00fcrfe", "Subject: =?utf-8?q?Entw=C3=BCrfe?=\r\n\r\nx\r\n", []string{`\Draft`}},
		{"Archive", "Subject: parent too\r\n\r\nx\r\n", nil},
	}
}

// pythonFlags is what Python reports for our flags: mbox Status/X-Status
// letters, or the maildir info letters.
func pythonFlags(f Format, flags []string, kwLetter func(string) string) string {
	var out []string
	if f == Mbox {
		out = append(out, "O")
	}
	for _, fl := range flags {
		switch {
		case fl == FlagSeen:
			out = append(out, map[Format]string{Mbox: "R", Maildir: "S"}[f])
		case fl == FlagAnswered:
			out = append(out, map[Format]string{Mbox: "A", Maildir: "R"}[f])
		case fl == FlagFlagged:
			out = append(out, "F")
		case fl == FlagDraft:
			out = append(out, map[Format]string{Mbox: "T", Maildir: "D"}[f])
		case fl == FlagDeleted:
			out = append(out, map[Format]string{Mbox: "D", Maildir: "T"}[f])
		case f == Maildir:
			out = append(out, kwLetter(fl))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "")
}

func TestPythonMailboxReadsArchive(t *testing.T) {
	python := requireTool(t, "python3")
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		a := mustOpen(t, f, dir, Options{})
		want := map[string][]string{}
		for _, m := range interopMessages() {
			fo := mustCreate(t, a, m.folder)
			mustAppend(t, fo, []byte(m.msg), AppendInfo{Flags: m.flags, Date: testDate})
			mustCommit(t, fo)
			kw := func(k string) string {
				l, _, _ := fo.st.(*maildirStore).keywords.letter(k, false)
				return string(l)
			}
			subject := strings.TrimPrefix(strings.SplitN(m.msg, "\r\n", 2)[0], "Subject: ")
			subject = strings.TrimPrefix(strings.SplitN(subject, "\n", 2)[0], "Subject: ")
			p := filepath.FromSlash(fo.Info().Path)
			want[p] = append(want[p], fmt.Sprintf("%s|%s", subject, pythonFlags(f, normalizeFlags(m.flags), kw)))
		}
		a.Close()

		out, err := exec.Command(python, "-c", pythonReader, string(f), dir).Output()
		if err != nil {
			t.Fatalf("python: %v", err)
		}
		var boxes map[string][][2]string
		if err := json.Unmarshal(out, &boxes); err != nil {
			t.Fatalf("python output %q: %v", out, err)
		}
		got := map[string][]string{}
		for box, msgs := range boxes {
			for _, m := range msgs {
				got[box] = append(got[box], m[0]+"|"+m[1])
			}
		}
		if len(got) != len(want) {
			t.Errorf("python sees folders %v, want %v", keysOf(got), keysOf(want))
		}
		for box, w := range want {
			g := got[box]
			slices.Sort(g)
			slices.Sort(w)
			if !slices.Equal(g, w) {
				t.Errorf("%s: python reads\n %q\nwant\n %q", box, g, w)
			}
		}
	})
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
