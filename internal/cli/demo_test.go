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
				"3. Moving pop3://carol@127.0.0.1:",
				"3         1008 B",
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
