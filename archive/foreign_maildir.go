package archive

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// foreignMaildirFlagLetters maps the info letters of maildir file names
// ("KEY:2,FRS") to IMAP flags. T (trashed) is \Deleted.
var foreignMaildirFlagLetters = map[byte]string{
	'P': FlagForwarded,
	'R': FlagAnswered,
	'S': FlagSeen,
	'T': FlagDeleted,
	'D': FlagDraft,
	'F': FlagFlagged,
}

// foreignIsMaildir reports whether dir is a maildir: it has cur/ and new/.
// tmp/ is not required (some tools create it lazily).
func foreignIsMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		st, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !st.IsDir() {
			return false
		}
	}
	return true
}

// foreignMaildirFile is one message file of a maildir.
type foreignMaildirFile struct {
	rel   string // "cur/NAME" or "new/NAME"
	key   string
	info  string // flag letters after ":2,"
	mtime time.Time
}

// foreignSplitMaildirName splits "KEY:2,FLAGS" (";" instead of ":" where
// a file system forbids colons). A name without info is all key.
func foreignSplitMaildirName(name string) (key, info string) {
	for _, sep := range []string{":2,", ";2,"} {
		if i := strings.LastIndex(name, sep); i > 0 {
			return name[:i], name[i+len(sep):]
		}
	}
	if i := strings.IndexAny(name, ":;"); i > 0 {
		return name[:i], ""
	}
	return name, ""
}

// foreignListMaildir lists the message files in cur/ and new/, sorted by
// key (keys start with the delivery time, so this is roughly arrival
// order). new/ is read as it is: nothing is moved, unlike go-maildir's
// Unseen. When two files share a key (only a broken tree does that) the
// second gets "#2" appended so that no message is lost.
func foreignListMaildir(dir string) ([]foreignMaildirFile, error) {
	var files []foreignMaildirFile
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !foreignRegular(filepath.Join(dir, sub), e) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // renamed by a running client
					continue
				}
				return nil, err
			}
			key, flags := foreignSplitMaildirName(name)
			files = append(files, foreignMaildirFile{rel: sub + "/" + name, key: key, info: flags, mtime: info.ModTime()})
		}
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].key < files[j].key })
	seen := make(map[string]int, len(files))
	for i := range files {
		k := files[i].key
		if n := seen[k]; n > 0 {
			files[i].key = k + "#" + strconv.Itoa(n+1)
		}
		seen[k]++
	}
	return files, nil
}

// foreignRegular reports whether a directory entry is a regular file,
// following a symbolic link to one.
func foreignRegular(dir string, e fs.DirEntry) bool {
	if e.Type().IsRegular() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && st.Mode().IsRegular()
}

// foreignDovecotKeywords reads a folder's dovecot-keywords file, which
// names the lowercase flag letters: line "0 Work" means 'a' is "Work".
// A missing file means no keywords.
func foreignDovecotKeywords(dir string) map[byte]string {
	f, err := os.Open(filepath.Join(dir, "dovecot-keywords"))
	if err != nil {
		return nil
	}
	defer f.Close()
	kw := map[byte]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		idx, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n >= 26 || strings.TrimSpace(name) == "" {
			continue
		}
		kw[byte('a'+n)] = strings.TrimSpace(name)
	}
	return kw
}

// foreignMaildirFlags turns info letters into IMAP flags and reports
// whether the message is marked trashed (\Deleted).
func foreignMaildirFlags(info string, keywords map[byte]string) (flags []string, deleted bool) {
	set := map[string]bool{}
	for i := 0; i < len(info); i++ {
		ch := info[i]
		if f, ok := foreignMaildirFlagLetters[ch]; ok {
			set[f] = true
			deleted = deleted || ch == 'T'
		} else if k, ok := keywords[ch]; ok {
			set[k] = true
		}
	}
	return foreignSortedFlags(set), deleted
}

// foreignScanMaildirFile reads one message file once for its size,
// SHA-256 and Message-ID (and Date header, the fallback date).
func foreignScanMaildirFile(path string) (size int64, sum string, h foreignMessageHeaders, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", h, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 32<<10)
	hash := sha256.New()
	var c foreignHeaderCollector
	atLineStart := true
	for {
		line, err := br.ReadSlice('\n')
		hash.Write(line)
		size += int64(len(line))
		if atLineStart && len(line) > 0 {
			if foreignBlankLine(line) != nil {
				break
			}
			if line[0] == ' ' || line[0] == '\t' {
				c.continuation(line)
			} else {
				c.field(foreignHeaderName(line), line)
			}
		}
		atLineStart = len(line) > 0 && line[len(line)-1] == '\n'
		if err == io.EOF {
			c.finish()
			return size, hex.EncodeToString(hash.Sum(nil)), c.h, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, "", h, err
		}
	}
	c.finish()
	n, err := io.Copy(hash, br)
	if err != nil {
		return 0, "", h, err
	}
	return size + n, hex.EncodeToString(hash.Sum(nil)), c.h, nil
}

// foreignParseDateHeader parses a Date header value.
func foreignParseDateHeader(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("no Date header")
	}
	return mail.ParseDate(v)
}

func foreignSortedFlags(set map[string]bool) []string {
	flags := make([]string, 0, len(set))
	for f := range set {
		flags = append(flags, f)
	}
	sort.Strings(flags)
	return flags
}
