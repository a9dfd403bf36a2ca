package cli

import (
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			r := runCLI(t, nil, false, "demo", "--format", format, "--dir", dir)
			if r.err != nil {
				t.Fatalf("demo: %v\n%s%s", r.err, r.stdout, r.stderr)
			}
			for _, want := range []string{
				"1. Backing up imap://alice@127.0.0.1:",
				"Reisen/Zürich",
				// The IMAP backup, its rerun and the listing.
				"fetched 16 new messages",
				"no new messages in 7 folders",
				"Sent                  \\Sent    3 ",
				"total: 10 folders              16 ",
				"4. Moving pop3://carol@127.0.0.1:",
				"3         1008 B",
				// Restore to an empty account, verify, restore again.
				"restored 16 messages",
				"verified: archive and server match (16 messages in 7 folders)",
				"nothing to upload to imap://alice.new@127.0.0.1:",
				// POP3 box + local Sent → new account that already had 2 of them.
				"fetched 5 new messages",
				"restored 6 messages",
				"2 already there",
				"INBOX                    6 messages",
				"Sent                     3 messages",
				"verified: every archived message is on the server (8 messages)",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
				}
			}
			if r.stderr != "" {
				t.Errorf("stderr: %q", r.stderr)
			}
		})
	}
}
