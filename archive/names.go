package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Folder names are data: each "/"-separated component of a name is escaped
// into one path component that cannot climb out of the archive root, hide
// itself, or land on a file another program keeps next to the mail.
//
// The natural escaping (escapeComponent) is injective and reversible
// (unescapeComponent): it writes %XX (upper-case hex) for every byte it
// does not keep, '%' itself is always escaped, and an empty component is
// a lone "%". Two further rewrites,
// done by the registry and recorded in folders.json, keep distinct names
// apart where the file system cannot: a suffix "%%N" for a name whose path
// equals another's under case folding (macOS, Windows, a copy to a USB
// stick), and a hash suffix "%%h…" for components too long for a file name.
// Neither can be produced by the natural escaping ("%%" never appears in
// it), so a rewritten path never equals a natural one.

// maxComponent is the longest escaped component kept as is. File systems
// allow 255 bytes; mbox parents need room for ".sbd".
const maxComponent = 200

// maxPath bounds the whole relative path so that ROOT/path stays well
// under PATH_MAX even for a long root.
const maxPath = 3000

// emptyComponent is the escaped form of an empty component: a lone '%'
// is never produced for anything else, since an escaped '%' is always
// followed by two hex digits.
const emptyComponent = "%"

// escapeComponent escapes one folder-name component for format f.
func escapeComponent(c string, f Format) string {
	if c == "" {
		return emptyComponent
	}
	var b strings.Builder
	for i := 0; i < len(c); {
		r, size := utf8.DecodeRuneInString(c[i:])
		if r == utf8.RuneError && size <= 1 {
			writeEscaped(&b, c[i]) // invalid UTF-8: keep the byte, escaped
			i++
			continue
		}
		if size == 1 && mustEscapeByte(c[i], i == 0) {
			writeEscaped(&b, c[i])
		} else {
			b.WriteString(c[i : i+size])
		}
		i += size
	}
	s := b.String()
	// Whole-component rules, applied to the escaped form so the result is
	// still a plain natural escape: escaping a kept ASCII letter or dot
	// instead of writing it is reversible like any other %XX.
	if reservedName(s, f) {
		s = escapeAt(s, 0)
	}
	if f == Mbox && (hasSuffixFold(s, ".sbd") || hasSuffixFold(s, ".msf")) {
		s = escapeAt(s, len(s)-4) // Thunderbird's subfolder directory and summary file
	}
	if n := len(s); n > 0 && (s[n-1] == '.' || s[n-1] == ' ') {
		s = escapeAt(s, n-1) // Windows drops trailing dots and spaces
	}
	return s
}

// mustEscapeByte reports whether an ASCII byte is written as %XX.
func mustEscapeByte(c byte, first bool) bool {
	switch {
	case c < 0x20 || c == 0x7f: // NUL, newlines, control characters
		return true
	case c == '%', c == '/', c == '\\':
		return true
	case strings.IndexByte(`:*?"<>|`, c) >= 0: // not allowed on Windows/exFAT
		return true
	case first && (c == '.' || c == '~'): // ".", "..", hidden files, backups
		return true
	}
	return false
}

func writeEscaped(b *strings.Builder, c byte) {
	const hexDigits = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&0xf])
}

// escapeAt replaces the ASCII byte at i of an escaped component by its %XX
// form. The byte is never '%' (those are already escaped).
func escapeAt(s string, i int) string {
	var b strings.Builder
	b.WriteString(s[:i])
	writeEscaped(&b, s[i])
	b.WriteString(s[i+1:])
	return b.String()
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// reservedName reports components that would collide with a file another
// program keeps in the tree: maildir's cur/new/tmp, Dovecot's own files,
// and Windows device names.
func reservedName(s string, f Format) bool {
	l := strings.ToLower(s)
	if f == Maildir && (l == "cur" || l == "new" || l == "tmp") {
		return true
	}
	if strings.HasPrefix(l, "dovecot") || l == "maildirfolder" || l == "subscriptions" {
		return true
	}
	base, _, _ := strings.Cut(l, ".")
	switch base {
	case "con", "prn", "aux", "nul":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "com") || strings.HasPrefix(base, "lpt")) &&
		base[3] >= '0' && base[3] <= '9' {
		return true
	}
	return false
}

// unescapeComponent reverses escapeComponent. It fails on input the
// natural escaping cannot have produced.
func unescapeComponent(s string) (string, error) {
	if s == emptyComponent {
		return "", nil
	}
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		v := unhex(s[i+1])<<4 | unhex(s[i+2])
		b.WriteByte(v)
		i += 2
	}
	return b.String(), nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// splitName splits an archive folder name into its components. Empty
// components ("/etc/x" from a server whose names start with the
// delimiter, "a//b") are kept: they escape to "%".
func splitName(name string) ([]string, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty folder name", ErrBadName)
	}
	return strings.Split(name, "/"), nil
}

// shortenComponent cuts an escaped component that is too long for a file
// name to a UTF-8-safe prefix and appends a hash of the full component.
func shortenComponent(escaped string) string {
	sum := sha256.Sum256([]byte(escaped))
	suffix := "%%h" + hex.EncodeToString(sum[:8])
	cut := maxComponent - len(suffix)
	for cut > 0 && !utf8.RuneStart(escaped[cut]) {
		cut--
	}
	// Do not cut inside a %XX escape.
	if i := strings.LastIndexByte(escaped[:cut], '%'); i >= 0 && i > cut-3 {
		cut = i
	}
	return escaped[:cut] + suffix
}

// foldPath is the key under which two paths collide on a case-insensitive,
// normalising file system (macOS folds case and Unicode normal forms).
func foldPath(p string) string {
	return strings.ToLower(norm.NFC.String(p))
}

// validRelPath checks a path read from folders.json: every component must
// be something the escaping can produce, so a tampered registry cannot
// point outside the root.
func validRelPath(p string) bool {
	if p == "" || len(p) > maxPath+maxComponent {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." || c[0] == '.' || len(c) > 255 {
			return false
		}
		if strings.ContainsAny(c, "\\\x00") {
			return false
		}
	}
	return true
}
