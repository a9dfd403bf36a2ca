package main

import (
	"strings"
	"testing"
	"time"
)

func timed(name string, secs ...float64) *variant {
	v := &variant{Name: name}
	for _, s := range secs {
		v.runs = append(v.runs, runResult{Wall: time.Duration(s * float64(time.Second))})
	}
	return v
}

// A speed target names the raw limit's own ratio against the peer, and a
// miss that the raw limit shares is marked as such.
func TestSpeedTargetShowsRawLimit(t *testing.T) {
	for _, tc := range []struct {
		name                string
		mailark, raw, peer  float64
		wantStatus, wantRaw string
	}{
		{"met", 0.7, 0.8, 4.0, "met", "raw limit 5.00×"},
		{"missed by mailark only", 0.9, 0.7, 4.0, "**missed**", "raw limit 5.71×"},
		{"missed by the raw limit too", 0.9, 0.85, 4.0, "**missed** (so did the raw limit)", "raw limit 4.71×"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &bench{sections: []section{{Rows: []row{{
				Key:     "imap-mbox-0ms",
				Mailark: timed("mailark", tc.mailark, tc.mailark, tc.mailark),
				Limit:   timed("raw", tc.raw, tc.raw, tc.raw),
				Peers:   []*variant{timed("mbsync → maildir", tc.peer, tc.peer, tc.peer)},
			}}}}}
			got := b.speedTarget("imap-mbox-0ms", "mbsync", 5, "t")
			if got.status != tc.wantStatus || !strings.Contains(got.measured, tc.wantRaw) {
				t.Errorf("status %q, measured %q; want %q and %q", got.status, got.measured, tc.wantStatus, tc.wantRaw)
			}
		})
	}
}
