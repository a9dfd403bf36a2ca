package testbed

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Import seeds many messages at once: it writes them into a staging maildir
// (flags and keywords in the file names and dovecot-keywords, INTERNALDATE
// as the files' mtime) and copies that into the account with one
// `doveadm import`. Folders are created (and subscribed) as needed. Within a
// folder the messages get ascending UIDs in slice order. Message.UID is
// ignored.
func (s *Server) Import(t testing.TB, user string, msgs []Message) {
	t.Helper()
	if len(msgs) == 0 {
		return
	}
	stage, err := os.MkdirTemp(s.Dir, "stage-")
	if err != nil {
		t.Fatalf("testbed: Import: %v", err)
	}
	defer os.RemoveAll(stage)
	if err := s.writeStage(stage, msgs); err != nil {
		t.Fatalf("testbed: Import %s: %v", user, err)
	}
	// UTF-8 keeps non-ASCII folder names readable on disk, so the staging
	// tree needs no modified UTF-7 encoder; -s subscribes new folders as an
	// IMAP client creating them would.
	s.Doveadm(t, "import", "-s", "-u", user, "maildir:"+stage+":UTF-8", "", "all")
}

// stageFolder collects the messages of one folder of the staging maildir.
type stageFolder struct {
	dir      string
	keywords map[string]int // keyword -> maildir letter index (a = 0)
	order    []string
}

func (s *Server) writeStage(stage string, msgs []Message) error {
	folders := map[string]*stageFolder{}
	seq := 0
	for _, m := range msgs {
		dir, err := stageDir(stage, m.Folder)
		if err != nil {
			return err
		}
		f := folders[dir]
		if f == nil {
			f = &stageFolder{dir: dir, keywords: map[string]int{}}
			folders[dir] = f
			for _, sub := range []string{"cur", "new", "tmp"} {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
					return err
				}
			}
		}
		info, err := f.info(m.Flags)
		if err != nil {
			return fmt.Errorf("folder %q: %w", m.Folder, err)
		}
		// Dovecot gives new maildir files UIDs in the order of the
		// timestamp that starts their names, so a counter there keeps the
		// slice order.
		seq++
		name := fmt.Sprintf("%d.M%dP%d.testbed:2,%s", 1_000_000_000+seq, seq, os.Getpid(), info)
		p := filepath.Join(dir, "cur", name)
		if err := os.WriteFile(p, m.Raw, 0o600); err != nil {
			return err
		}
		date := m.Date
		if date.IsZero() {
			date = time.Now()
		}
		if err := os.Chtimes(p, date, date); err != nil {
			return err
		}
	}
	for _, f := range folders {
		if len(f.order) == 0 {
			continue
		}
		var b strings.Builder
		for i, k := range f.order {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
		if err := os.WriteFile(filepath.Join(f.dir, "dovecot-keywords"), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	// doveadm reads the staging tree as the mail user and writes its
	// index files there.
	return filepath.WalkDir(stage, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, s.vmail.uid, s.vmail.gid)
	})
}

// info returns the maildir info flags ("2,<letters>" without the prefix):
// system flags in ASCII order, then keyword letters.
func (f *stageFolder) info(flags []string) (string, error) {
	var sys, kw []byte
	for _, fl := range NormalizeFlags(flags) {
		if err := validFlag(fl); err != nil {
			return "", err
		}
		if c, ok := systemFlags[fl]; ok {
			sys = append(sys, c)
			continue
		}
		i, ok := f.keywords[fl]
		if !ok {
			if len(f.order) == 26 {
				return "", fmt.Errorf("more than 26 distinct keywords in one Import call (maildir limit); split the call")
			}
			i = len(f.order)
			f.keywords[fl] = i
			f.order = append(f.order, fl)
		}
		kw = append(kw, byte('a'+i))
	}
	sort.Slice(sys, func(i, j int) bool { return sys[i] < sys[j] })
	sort.Slice(kw, func(i, j int) bool { return kw[i] < kw[j] })
	return string(sys) + string(kw), nil
}

// stageDir maps an IMAP folder name to its Maildir++ directory in the
// staging tree: INBOX is the root, "a/b" is ".a.b".
func stageDir(stage, folder string) (string, error) {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return stage, nil
	}
	if strings.Contains(folder, ".") {
		return "", fmt.Errorf("folder %q: Maildir++ cannot store '.' in folder names", folder)
	}
	for _, part := range strings.Split(folder, "/") {
		if part == "" || strings.HasPrefix(part, "~") {
			return "", fmt.Errorf("folder %q: empty level or level starting with '~'", folder)
		}
	}
	if strings.ContainsAny(folder, "\x00\r\n") {
		return "", fmt.Errorf("folder %q: NUL, CR or LF in the name", folder)
	}
	return filepath.Join(stage, "."+strings.ReplaceAll(folder, "/", ".")), nil
}
