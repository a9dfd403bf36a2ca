package main

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"
)

func TestDotReaderUnstuffsAndStopsAtTheDot(t *testing.T) {
	wire := "Subject: x\r\n\r\n..leading dot\r\n.\r\nnext response\r\n"
	r := bufio.NewReaderSize(strings.NewReader(wire), 16) // lines longer than the buffer too
	d := &dotReader{r: r}
	d.reset()
	got, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Subject: x\r\n\r\n.leading dot\r\n"; string(got) != want {
		t.Fatalf("body %q, want %q", got, want)
	}
	rest, _ := r.ReadString('\n')
	if rest != "next response\r\n" {
		t.Fatalf("reader left at %q", rest)
	}
}

func TestLiteralSize(t *testing.T) {
	for line, want := range map[string]int64{
		"* 1 FETCH (UID 5 BODY[] {1234}\r\n": 1234,
		"* 1 FETCH (BODY[] {0}\r\n":          0,
		"a APPEND x {12+}\r\n":               12,
		"* OK done\r\n":                      -1,
		"* OK {x}\r\n":                       -1,
	} {
		n, ok := literalSize([]byte(line))
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("literalSize(%q) = %d, %v; want %d", line, n, ok, want)
		}
	}
}

func TestFetchMeta(t *testing.T) {
	flags, date := fetchMeta([]byte(`* 3 FETCH (UID 9 FLAGS (\Seen \Answered) INTERNALDATE " 1-Jun-2025 09:00:00 +0200" BODY[] {10}`))
	if strings.Join(flags, ",") != `\Seen,\Answered` {
		t.Errorf("flags %q", flags)
	}
	if want := time.Date(2025, 6, 1, 7, 0, 0, 0, time.UTC); !date.Equal(want) {
		t.Errorf("date %v, want %v", date, want)
	}
	if got := maildirInfo(flags); got != "RS" {
		t.Errorf("maildir info %q, want RS", got)
	}
}

func TestCorpusIsDeterministicAndSized(t *testing.T) {
	a, b := planAccount(corpusSeed), planAccount(corpusSeed)
	if len(a) != 5000 {
		t.Fatalf("%d messages, want 5000", len(a))
	}
	var total int64
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("spec %d differs between two plans", i)
		}
		total += int64(a[i].Size)
	}
	if total < 200e6 || total > 300e6 {
		t.Fatalf("planned %d bytes, want about 250 MB", total)
	}
	var x, y strings.Builder
	if _, err := render(&x, a[7]); err != nil {
		t.Fatal(err)
	}
	render(&y, a[7])
	if x.String() != y.String() || !strings.Contains(x.String(), "\r\nMessage-ID: <") {
		t.Fatal("rendering is not deterministic or lacks headers")
	}
}
