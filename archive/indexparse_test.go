package archive

import (
	"encoding/json"
	"reflect"
	"testing"
)

func FuzzIndexRecord(f *testing.F) {
	for _, s := range []string{
		`{"op":"add","key":"1.M1P1Q1Rdeadbeef.h","size":12,"sha256":"ab","mid":"<a@b>","flags":["\\Seen","$x"],"date":"2024-03-09T17:04:05+05:30","uid":7,"added":1700000000}`,
		`{"op":"add","key":"0","size":1,"sha256":"x","flags":null,"off":0,"pre":40,"esc":3,"disk":44}`,
		`{"op":"flags","key":"k","flags":[]}`,
		`{"op":"add","key":"k","mid":"\u003ca\u003e \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t","uidl":"\u0000b64:/w=="}`,
		`{"op":"add","key":"k","size":1e3}`,
		`{"op":"add","unknown":{"nested":[1,2]}}`,
		` { "op" : "add" , "key" : "k" } `,
		`{"uid":4294967296}`, `{"uid":-1}`, `{"mid":"\ud800"}`, `{"op":"add"}x`, `{}`, `[]`, `{"flags":["a",]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var fast, slow record
		errFast := parseRecord(line, &fast)
		errSlow := json.Unmarshal(line, &slow)
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("fast error %v, encoding/json error %v for %q", errFast, errSlow, line)
		}
		if errFast == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %+v\nslow %+v\nfor %q", fast, slow, line)
		}
		// And the whole load path never panics on arbitrary bytes.
		idx := newIndex()
		_ = idx.apply(&fast)
	})
}

func TestRecordRoundTrip(t *testing.T) {
	recs := []record{
		{Op: opAdd, Key: "k1", Size: 5, SHA: "00", MID: "<\xff bad utf8>", Flags: []string{`\Seen`, "k\u00e9"}, Date: "2024-01-01T00:00:00-08:00", UID: 1 << 31, UIDL: "u\x00", Added: 1},
		{Op: opFlags, Key: "k1", Flags: []string{}},
		{Op: opAdd, Key: "7", Off: 7, Pre: 50, Esc: 3, Disk: 54, SHA: "11"},
	}
	dir := t.TempDir()
	f, _ := openAppendable(dir + "/i")
	ixf := &indexFile{f: f}
	if err := ixf.appendRecords(recs); err != nil {
		t.Fatal(err)
	}
	f.Seek(0, 0)
	var got []record
	idx := newIndex()
	_ = idx
	data := make([]byte, ixf.size)
	f.ReadAt(data, 0)
	for _, line := range splitLines(data) {
		var r record
		if err := parseRecord(line, &r); err != nil {
			t.Fatal(err)
		}
		if !r.decodeStrings() {
			t.Fatal("decode")
		}
		got = append(got, r)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("got %+v\nwant %+v", got, recs)
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:min(i+1, len(b))])
		b = b[min(i+1, len(b)):]
	}
	return out
}
