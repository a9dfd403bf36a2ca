package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

// Fuzz targets for every parser in this package that reads outside input:
// mbox files (our mboxrd and the variants mail clients write), maildir
// file names and flags, the sidecar files, and folder names from servers.
// Seeds live in testdata/fuzz/<target>/; scripts/fuzz.sh runs them all.

// FuzzMboxRoundTrip: any bytes appended to an mbox folder come back
// exactly, after the archive is closed and opened again.
func FuzzMboxRoundTrip(f *testing.F) {
	for _, s := range [][]byte{
		[]byte("From me\nFrom you\n>From x\n>>From y\n"),
		[]byte("Subject: x\r\n\r\nFrom \r\n>From \r\nend"),
		[]byte("\n\nFrom \n"), []byte(""), []byte(">"), []byte("a\x00\rb\r\r\n"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		dir := fuzzTempDir(t)
		a := mustOpen(t, Mbox, dir, Options{})
		fo := mustCreate(t, a, "INBOX")
		m1 := mustAppend(t, fo, msg, AppendInfo{Flags: []string{FlagSeen}, Date: time.Unix(1e9, 0)})
		m2 := mustAppend(t, fo, msg, AppendInfo{})
		mustCommit(t, fo)
		a.Close()
		b := mustOpen(t, Mbox, dir, Options{ReadOnly: true})
		defer b.Close()
		for _, key := range []string{m1.Key, m2.Key} {
			rc, err := b.Open("INBOX", key)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("read back %q (%v), want %q", got, err, msg)
			}
		}
	})
}

// FuzzForeignMbox: a mail client's mbox file of any content, read as each
// variant, never panics, and every message the scan lists can be read
// back with the size the scan reported.
func FuzzForeignMbox(f *testing.F) {
	for _, s := range []string{
		"From a@b Thu Jan  1 00:00:00 1970\nSubject: x\nStatus: RO\nX-Status: AF\n\nbody\n>From q\n\nFrom b@c Fri Jan  2 00:00:00 1970\n\nsecond\n",
		"From - Mon Jan  1 00:00:00 2024\r\nX-Mozilla-Status: 0001\r\nX-Mozilla-Status2: 00000000\r\n\r\nhi\r\n",
		"From x\nContent-Length: 3\n\nFrom\n\n", "garbage without a From line\n", "From \n", "\n\n\nFrom a  Sat Feb 29 12:00:00 2020 +0100\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(fuzzTempDir(t), "box")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, variant := range []MboxVariant{MboxO, MboxRD} {
			var metas []Meta
			err := foreignScanMbox(path, ForeignOptions{Mbox: variant, IncludeDeleted: true}, func(m Meta, _ bool) { metas = append(metas, m) })
			if err != nil {
				continue // refusing a file is fine; crashing is not
			}
			for _, m := range metas {
				rc, err := foreignOpenMbox(path, m.Key, variant)
				if err != nil {
					t.Fatalf("variant %v: scanned message %q cannot be opened: %v", variant, m.Key, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("variant %v: reading %q: %v", variant, m.Key, err)
				}
				if int64(len(got)) != m.Size {
					t.Fatalf("variant %v: message %q reads %d bytes, scan said %d", variant, m.Key, len(got), m.Size)
				}
			}
		}
	})
}

// FuzzMaildirName: file names found in a maildir (ours or a mail
// client's) split into key and flags without panics or lost bytes.
func FuzzMaildirName(f *testing.F) {
	for _, s := range []string{
		"1700000000.M1P2Q3.host,S=123:2,FRS", "1.2.host:2,abcz", "x;2,S", "name", ":2,", "a:b:2,S", "k,S=-1,W=9:2,", "k,S=99999999999999999999:2,T",
	} {
		f.Add(s)
	}
	keywords := map[byte]string{'a': "Junk", 'b': "$Forwarded"}
	f.Fuzz(func(t *testing.T, name string) {
		key, info := foreignSplitMaildirName(name)
		if !strings.HasPrefix(name, key) || len(key)+len(info) > len(name) {
			t.Fatalf("split %q into %q + %q", name, key, info)
		}
		flags, _ := foreignMaildirFlags(info, keywords)
		if !slices.IsSorted(flags) || len(slices.Compact(slices.Clone(flags))) != len(flags) {
			t.Fatalf("flags of %q not sorted and unique: %q", info, flags)
		}
		if k := keyOf(name); !strings.HasPrefix(name, k) || strings.ContainsAny(k, ":,") {
			t.Fatalf("keyOf(%q) = %q", name, k)
		}
		// Negative means "unknown" to the caller (it stats the file).
		if n := sizeFromName(name); n >= 0 && !strings.Contains(name, "S=") {
			t.Fatalf("sizeFromName(%q) = %d without an S= field", name, n)
		}
	})
}

// sidecarFiles are the sidecar files FuzzSidecar overwrites, by index.
var sidecarFiles = []string{
	".mailark/archive.json", ".mailark/folders.json", ".mailark/folders/0001/index.jsonl", ".mailark/folders/0001/state.json",
}

// FuzzSidecar: an archive whose sidecar file was replaced by any bytes
// (disk damage, an editor, another program) opens with a classified error
// or opens and never hands out bytes that are not a message appended to
// it.
func FuzzSidecar(f *testing.F) {
	f.Add(uint8(0), []byte(`{"format":"maildir","version":1}`))
	f.Add(uint8(1), []byte(`{}`))
	f.Add(uint8(2), []byte("{\"op\":\"add\",\"key\":\"k\",\"size\":3}\n{\"op\":\"flags\"\n"))
	f.Add(uint8(3), []byte(`{"uidvalidity":4294967295,"last_uid":-1}`))
	f.Add(uint8(2), []byte("\x00\xff garbage"))
	f.Add(uint8(1), []byte(`[{"name":"../../x","path":"../../x"}]`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		for _, format := range formats {
			dir := fuzzTempDir(t)
			a := mustOpen(t, format, dir, Options{})
			fo := mustCreate(t, a, "INBOX")
			msgs := [][]byte{[]byte("Subject: one\r\n\r\n1\r\n"), []byte("Subject: two\r\n\r\nFrom 2\r\n")}
			for _, m := range msgs {
				mustAppend(t, fo, m, AppendInfo{UID: 1})
			}
			mustCommit(t, fo)
			a.Close()
			file := filepath.Join(dir, sidecarFiles[int(which)%len(sidecarFiles)])
			if _, err := os.Stat(file); err != nil {
				t.Skipf("%s not in this layout", file)
			}
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			checkDamagedOpen(t, format, dir, msgs)
		}
	})
}

// checkDamagedOpen opens a damaged archive read-only and read-write.
func checkDamagedOpen(t *testing.T, format Format, dir string, msgs [][]byte) {
	for _, opt := range []Options{{ReadOnly: true}, {}} {
		a, err := Open(context.Background(), spec(format, dir), opt)
		if err != nil {
			if mailerr.ExitCode(err) == mailerr.ExitFailure {
				t.Fatalf("unclassified error opening a damaged archive: %v", err)
			}
			continue
		}
		folders, err := a.Folders()
		if err != nil {
			a.Close()
			continue
		}
		for _, fi := range folders {
			metas, err := a.Messages(fi.Name)
			if err != nil {
				continue
			}
			for _, m := range metas {
				rc, err := a.Open(fi.Name, m.Key)
				if err != nil {
					continue
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err == nil && !slices.ContainsFunc(msgs, func(w []byte) bool { return bytes.Equal(w, got) }) {
					t.Fatalf("damaged %s archive handed out %q as a message", format, got)
				}
			}
		}
		a.Close()
	}
}

// FuzzFolderNames: any two server folder names map to paths inside the
// root, distinct names never share a path (not even one differing only in
// case), and the same name always gets the same folder.
func FuzzFolderNames(f *testing.F) {
	for _, p := range [][2]string{
		{"../x", "/etc/passwd"}, {"Foo", "foo"}, {"a/b", "a.sbd/b"}, {"a\x00b", "a\\b"}, {"cur", "new/tmp"},
		{".hidden", ".."}, {"INBOX", "inbox"}, {"a//b", "a/b/"}, {strings.Repeat("x", 300), strings.Repeat("x", 301)},
		{"\u00e9", "e\u0301"}, {"CON", "con.txt"}, {"a%2Fb", "a/b"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, n1, n2 string) {
		for _, format := range formats {
			dir := fuzzTempDir(t)
			a := mustOpen(t, format, dir, Options{})
			paths := map[string]string{}
			for _, n := range []string{n1, n2, n1} {
				fo, err := a.CreateFolder(n, "")
				if err != nil {
					if !errors.Is(err, ErrBadName) && mailerr.ExitCode(err) == mailerr.ExitFailure {
						t.Fatalf("CreateFolder(%q): unclassified error %v", n, err)
					}
					continue
				}
				p := fo.Info().Path
				full := filepath.Join(dir, filepath.FromSlash(p))
				if rel, err := filepath.Rel(dir, full); err != nil || rel == "." || strings.HasPrefix(rel, "..") || p == ".mailark" || strings.HasPrefix(p, ".mailark/") {
					t.Fatalf("%s: folder %q maps to %q, outside the archive's mail", format, n, p)
				}
				if prev, ok := paths[n]; ok && prev != p {
					t.Fatalf("%s: folder %q got %q, then %q", format, n, prev, p)
				}
				for other, op := range paths {
					if other != n && (op == p || foldPath(op) == foldPath(p)) {
						t.Fatalf("%s: folders %q and %q share path %q/%q", format, other, n, op, p)
					}
				}
				paths[n] = p
			}
			a.Close()
		}
	})
}

// fuzzTempDir is a temporary directory on a RAM file system when there is
// one: the stores fsync every commit, which on a disk limits a fuzzer to a
// few runs a second.
func fuzzTempDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "mailark-fuzz-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// FuzzLedger: a restore ledger with any content (a torn last line after a
// crash, damage) opens with a classified error or opens, and what is
// recorded next is found again after reopening: a damaged tail must not
// swallow later records, or a resumed restore would upload twice.
func FuzzLedger(f *testing.F) {
	f.Add([]byte(`{"folder":"INBOX","key":"k1","sha256":"ab","target_folder":"INBOX","uid":3}` + "\n"))
	f.Add([]byte(`{"folder":"INBOX","key":"k1"`))
	f.Add([]byte("\n\n\x00{}\n[1,2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(fuzzTempDir(t), "ledgers", "target.jsonl")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := OpenLedger(path)
		if err != nil {
			if mailerr.ExitCode(err) == mailerr.ExitFailure {
				t.Fatalf("unclassified error opening a damaged ledger: %v", err)
			}
			return
		}
		e := LedgerEntry{Folder: "Fuzz/Folder", Key: "fuzz-key", SHA256: "00ff", TargetFolder: "T", UID: 7, At: time.Unix(1e9, 0)}
		if err := l.Record(e); err != nil {
			l.Close()
			t.Fatalf("Record after a damaged tail: %v", err)
		}
		l.Close()
		l, err = OpenLedger(path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l.Close()
		if !l.Has(e.Folder, e.Key, e.SHA256) {
			t.Fatalf("a record written after %q is lost on reopen", data)
		}
	})
}
