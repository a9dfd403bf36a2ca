package archive

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parseRecord decodes one index line. Index lines are flat JSON objects
// of known fields, and a folder may have 100,000 of them to load at every
// open, so this reads them directly instead of through encoding/json's
// reflection (about 3× faster). Anything it does not expect (a field a
// newer mailark added, an unusual but valid spelling) is handed to
// encoding/json, so the result is always what json.Unmarshal would give.
func parseRecord(line []byte, rec *record) error {
	return parseRecordCached(line, rec, nil)
}

// parseRecordCached is parseRecord sharing flag slices through cache.
func parseRecordCached(line []byte, rec *record, cache map[string][]string) error {
	p := recordParser{b: line, flagCache: cache}
	if err := p.object(rec); err != nil {
		*rec = record{}
		return json.Unmarshal(line, rec)
	}
	return nil
}

var errSlowPath = errors.New("index line needs the general JSON decoder")

type recordParser struct {
	b         []byte
	i         int
	flagCache map[string][]string
}

func (p *recordParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *recordParser) expect(c byte) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != c {
		return errSlowPath
	}
	p.i++
	return nil
}

func (p *recordParser) object(rec *record) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return p.end()
	}
	for {
		key, err := p.rawKey()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := p.field(key, rec); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return errSlowPath
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return p.end()
		default:
			return errSlowPath
		}
	}
}

func (p *recordParser) end() error {
	p.ws()
	if p.i != len(p.b) {
		return errSlowPath
	}
	return nil
}

// rawKey reads an object key that needs no unescaping (all of ours).
func (p *recordParser) rawKey() ([]byte, error) {
	if err := p.expect('"'); err != nil {
		return nil, err
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			k := p.b[start:p.i]
			p.i++
			return k, nil
		case c == '\\' || c < 0x20:
			return nil, errSlowPath
		}
		p.i++
	}
	return nil, errSlowPath
}

func (p *recordParser) field(key []byte, rec *record) error {
	var err error
	switch string(key) { // compiled without allocating
	case "op":
		rec.Op, err = p.op()
	case "flags":
		rec.Flags, err = p.flags()
	case "key":
		rec.Key, err = p.str()
	case "sha256":
		rec.SHA, err = p.str()
	case "mid":
		rec.MID, err = p.str()
	case "date":
		rec.Date, err = p.str()
	case "uidl":
		rec.UIDL, err = p.str()
	case "size":
		rec.Size, err = p.int64()
	case "added":
		rec.Added, err = p.int64()
	case "off":
		rec.Off, err = p.int64()
	case "pre":
		rec.Pre, err = p.int64()
	case "esc":
		rec.Esc, err = p.int64()
	case "disk":
		rec.Disk, err = p.int64()
	case "uid":
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '-' {
			return errSlowPath // unsigned: encoding/json refuses even -0
		}
		var n int64
		n, err = p.int64()
		if err == nil && (n < 0 || n > 1<<32-1) {
			err = errSlowPath
		}
		rec.UID = uint32(n)
	default:
		err = errSlowPath
	}
	return err
}

// op reads the record type; the known ones cost no allocation.
func (p *recordParser) op() (string, error) {
	p.ws()
	for _, op := range []string{opAdd, opFlags, opUID} {
		if len(p.b)-p.i > len(op)+1 && p.b[p.i] == '"' && string(p.b[p.i+1:p.i+1+len(op)]) == op && p.b[p.i+1+len(op)] == '"' {
			p.i += len(op) + 2
			return op, nil
		}
	}
	return p.str()
}

// flags reads a flag list. Most messages share one of a few flag sets, so
// each distinct spelling is parsed once and the slice shared (read-only).
func (p *recordParser) flags() ([]string, error) {
	start := p.i
	if end, ok := p.arrayEnd(); ok && p.flagCache != nil {
		if fl, hit := p.flagCache[string(p.b[start:end])]; hit {
			p.i = end
			return fl, nil
		}
	}
	p.i = start
	fl, err := p.strings()
	if err == nil && p.flagCache != nil {
		p.flagCache[string(p.b[start:p.i])] = fl
	}
	return fl, err
}

// arrayEnd finds the end of the array or null at p.i without decoding it.
func (p *recordParser) arrayEnd() (int, bool) {
	i := p.i
	for i < len(p.b) && (p.b[i] == ' ' || p.b[i] == '\t') {
		i++
	}
	if i >= len(p.b) || p.b[i] != '[' {
		return 0, false
	}
	inString := false
	for i++; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && c == ']':
			return i + 1, true
		}
	}
	return 0, false
}

func (p *recordParser) int64() (int64, error) {
	p.ws()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	// JSON integers: no leading zeros, at least one digit. Fractions,
	// exponents and overflow go to encoding/json to decide.
	if p.i == digits || (p.b[digits] == '0' && p.i-digits > 1) {
		return 0, errSlowPath
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	if err != nil {
		return 0, errSlowPath
	}
	return n, nil
}

func (p *recordParser) strings() ([]string, error) {
	p.ws()
	if p.i+4 <= len(p.b) && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return nil, nil
	}
	if err := p.expect('['); err != nil {
		return nil, err
	}
	out := []string{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return out, nil
	}
	for {
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		p.ws()
		if p.i >= len(p.b) {
			return nil, errSlowPath
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return out, nil
		default:
			return nil, errSlowPath
		}
	}
}

// str reads a JSON string, unescaping as encoding/json does.
func (p *recordParser) str() (string, error) {
	if err := p.expect('"'); err != nil {
		return "", err
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", errSlowPath // encoding/json replaces invalid bytes
			}
			return string(s), nil
		}
		if c == '\\' {
			return p.escapedStr(start)
		}
		if c < 0x20 {
			return "", errSlowPath
		}
		p.i++
	}
	return "", errSlowPath
}

func (p *recordParser) escapedStr(start int) (string, error) {
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return "", errSlowPath
			}
			return string(out), nil
		case c < 0x20:
			return "", errSlowPath
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", errSlowPath
		}
		esc := p.b[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", errSlowPath
			}
			if utf16.IsSurrogate(r) {
				r2, ok := rune(-1), false
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					r2, ok = p.hex4()
				}
				if !ok {
					return "", errSlowPath
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", errSlowPath
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errSlowPath
		}
	}
	return "", errSlowPath
}

func (p *recordParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}
