package archive

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func hostileNames() []string {
	return []string{
		"..", "../x", "../../etc/x", "/etc/x", "a/../../b", "a\\b", "..\\..\\x", "nul\x00byte", "\x00",
		"new\nline", "tab\there", "del\x7f", strings.Repeat("y", 10000), strings.Repeat("\u00e9", 5000),
		strings.Repeat("z", 300) + "/" + strings.Repeat("w", 300),
		"cur", "new", "tmp", "INBOX/cur", "INBOX/new", "CUR", ".hidden", ".", ".mailark", "~backup",
		"INBOX", "inbox", "Inbox", "Foo", "foo", "FOO", "a/b", "a.b", "a", "a.sbd", "a.sbd/b", "a.msf",
		"dovecot-keywords", "dovecot.index", "maildirfolder", "CON", "nul", "com1.txt", "trailing.", "trailing ",
		"percent%", "percent%25", "x%%2", "%", "/", "a//b", "/lead", "trail/", "colon:name", "star*?", `quote"<>|`,
		"Entw\u00fcrfe", "\u65e5\u672c\u8a9e/\u30d5\u30a9\u30eb\u30c0", "e\u0301t\u00e9", "\u00e9t\u00e9", "\xff\xfe invalid utf8",
	}
}

func TestHostileFolderNames(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		outer := t.TempDir()
		dir := filepath.Join(outer, "archive")
		a := mustOpen(t, f, dir, Options{})
		created := map[string]bool{}
		for _, name := range hostileNames() {
			fo, err := a.CreateFolder(name, "")
			if err != nil {
				t.Fatalf("CreateFolder(%q): %v", name, err)
			}
			created[name] = true
			mustAppend(t, fo, []byte("Subject: "+name+"\r\n\r\nbody\r\n"), AppendInfo{Date: testDate})
			mustCommit(t, fo)
		}
		if _, err := a.CreateFolder("", ""); err == nil {
			t.Errorf("CreateFolder accepted an empty name")
		}
		infos, err := a.Folders()
		if err != nil {
			t.Fatal(err)
		}
		a.Close()

		// Nothing outside the root.
		if entries, _ := os.ReadDir(outer); len(entries) != 1 || entries[0].Name() != "archive" {
			t.Fatalf("files written beside the archive: %v", entries)
		}
		if _, err := os.Stat("/etc/x"); err == nil {
			t.Fatalf("/etc/x exists")
		}
		// Every folder has its own path, distinct even under case folding,
		// inside the root, with components short enough for any file system.
		paths := map[string]string{}
		for _, info := range infos {
			if !created[info.Name] && !info.NoSelect {
				t.Errorf("unexpected selectable folder %q", info.Name)
			}
			delete(created, info.Name)
			fold := foldPath(info.Path)
			if other, ok := paths[fold]; ok {
				t.Errorf("%q and %q share the path %q", info.Name, other, info.Path)
			}
			paths[fold] = info.Name
			abs := filepath.Join(dir, filepath.FromSlash(info.Path))
			if rel, err := filepath.Rel(dir, abs); err != nil || strings.HasPrefix(rel, "..") || filepath.IsAbs(info.Path) {
				t.Errorf("%q maps outside the root: %q", info.Name, info.Path)
			}
			for _, c := range strings.Split(info.Path, "/") {
				if len(c) > 255 || c == "" || c[0] == '.' || strings.ContainsAny(c, "\x00\\\n") {
					t.Errorf("%q: unsafe component %q", info.Name, c)
				}
				if f == Maildir && slices.Contains([]string{"cur", "new", "tmp"}, strings.ToLower(c)) {
					t.Errorf("%q: component %q is a maildir subdirectory name", info.Name, c)
				}
				if f == Mbox && strings.HasSuffix(strings.ToLower(c), ".sbd") && c != filepath.Base(c) {
					t.Errorf("%q: component %q", info.Name, c)
				}
			}
		}
		if len(created) > 0 {
			t.Errorf("folders not listed: %v", created)
		}
		for p, mode := range walkTree(t, dir) {
			if mode.Type()&os.ModeSymlink != 0 {
				t.Errorf("symlink %s", p)
			}
		}

		// Reopened, every name finds its folder and its message again.
		a = mustOpen(t, f, dir, Options{ReadOnly: true})
		defer a.Close()
		for _, name := range hostileNames() {
			fo, err := a.Folder(name)
			if err != nil {
				t.Fatalf("Folder(%q) after reopen: %v", name, err)
			}
			es := fo.Entries()
			if len(es) != 1 {
				t.Fatalf("%q: %d messages", name, len(es))
			}
			if got := string(readMessage(t, fo, es[0].Key)); got != "Subject: "+name+"\r\n\r\nbody\r\n" {
				t.Fatalf("%q: got message %.40q", name, got)
			}
		}
	})
}

func TestEscapeReversible(t *testing.T) {
	for _, f := range formats {
		seen := map[string]string{}
		for _, full := range hostileNames() {
			for _, c := range strings.Split(full, "/") {
				e := escapeComponent(c, f)
				back, err := unescapeComponent(e)
				if err != nil || back != c {
					t.Errorf("%s: %q -> %q -> %q (%v)", f, c, e, back, err)
				}
				if other, ok := seen[e]; ok && other != c {
					t.Errorf("%s: %q and %q both escape to %q", f, c, other, e)
				}
				seen[e] = c
				if strings.Contains(e, "%%") || e == "" {
					t.Errorf("natural escape of %q contains the reserved %%%%: %q", c, e)
				}
			}
		}
	}
}

func FuzzEscapeComponent(f *testing.F) {
	for _, n := range hostileNames() {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, c string) {
		for _, format := range formats {
			e := escapeComponent(c, format)
			back, err := unescapeComponent(e)
			if err != nil || back != c {
				t.Fatalf("%q -> %q -> %q (%v)", c, e, back, err)
			}
			if e == "" || e[0] == '.' || (c != "" && e == emptyComponent) || strings.ContainsAny(e, "/\\\x00") || strings.Contains(e, "%%") {
				t.Fatalf("%q escaped to unsafe %q", c, e)
			}
			if !utf8.ValidString(e) {
				t.Fatalf("%q escaped to invalid UTF-8 %q", c, e)
			}
		}
	})
}

func TestCaseCollisionsGetDistinctPaths(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		a := mustOpen(t, f, t.TempDir(), Options{})
		defer a.Close()
		names := []string{"Foo", "foo", "FOO", "foo/bar", "Foo/bar", "\u00e9t\u00e9", "\u00c9T\u00c9", "e\u0301te\u0301"}
		got := map[string]bool{}
		for _, n := range names {
			fo := mustCreate(t, a, n)
			p := foldPath(fo.Info().Path)
			if got[p] {
				t.Errorf("%q got a path that folds onto another: %q", n, fo.Info().Path)
			}
			got[p] = true
		}
		// Idempotent: the same name gets the same folder.
		f1, f2 := mustCreate(t, a, "foo"), mustCreate(t, a, "foo")
		if f1 != f2 || f1.Info().Path != "foo%%2" {
			t.Errorf("second CreateFolder(foo): path %q", f2.Info().Path)
		}
	})
}

func TestTamperedRegistryRefused(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, Maildir, dir, Options{})
	mustCreate(t, a, "INBOX")
	a.Close()
	reg := filepath.Join(dir, ".mailark", "folders.json")
	data, _ := os.ReadFile(reg)
	os.WriteFile(reg, []byte(strings.Replace(string(data), `"path": "INBOX"`, `"path": "../../etc"`, 1)), 0o600)
	if _, err := Open(t.Context(), spec(Maildir, dir), Options{}); err == nil || !strings.Contains(err.Error(), "unsafe path") {
		t.Fatalf("Open with a registry pointing outside the root: %v", err)
	}
}
