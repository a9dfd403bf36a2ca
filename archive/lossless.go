package archive

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// JSON strings hold Unicode text only: encoding/json turns invalid UTF-8
// into U+FFFD. Names, Message-IDs and UIDLs come from servers that may send
// any bytes, and the sidecar must give them back exactly (a mangled
// Message-ID would defeat duplicate detection, a mangled folder name would
// lose the folder). So such strings are stored as a marker plus base64.
// The marker starts with NUL, which no valid name or header holds; a valid
// string that happens to start with it is encoded as well, so decoding is
// exact for every input.
const losslessMarker = "\x00b64:"

func encodeLossless(s string) string {
	if utf8.ValidString(s) && !strings.HasPrefix(s, losslessMarker) {
		return s
	}
	return losslessMarker + base64.StdEncoding.EncodeToString([]byte(s))
}

func decodeLossless(s string) (string, bool) {
	if len(s) == 0 || s[0] != 0 || !strings.HasPrefix(s, losslessMarker) {
		return s, true
	}
	b, err := base64.StdEncoding.DecodeString(s[len(losslessMarker):])
	if err != nil {
		return "", false
	}
	return string(b), true
}

func encodeLosslessAll(in []string) []string {
	var out []string
	for i, s := range in {
		if e := encodeLossless(s); e != s {
			if out == nil {
				out = append([]string(nil), in...)
			}
			out[i] = e
		}
	}
	if out == nil {
		return in
	}
	return out
}

// decodeLosslessAll decodes a list; it copies before changing anything,
// as the list may be shared.
func decodeLosslessAll(in []string) ([]string, bool) {
	out := in
	for i, s := range in {
		if len(s) > 0 && s[0] == 0 {
			d, ok := decodeLossless(s)
			if !ok {
				return nil, false
			}
			if &out[0] == &in[0] {
				out = append([]string(nil), in...)
			}
			out[i] = d
		}
	}
	return out, true
}
