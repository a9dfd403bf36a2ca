package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mailark/mailark/internal/cli/config"
)

// The sysadmin docs must not drift from the code: the exit-code table is
// the one --help prints, and the config example parses.
func TestCronDocs(t *testing.T) {
	data, err := os.ReadFile("../../docs/cron.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	if !strings.Contains(doc, ExitCodeMarkdown()) {
		t.Errorf("docs/cron.md exit-code table differs from the code's; want:\n%s", ExitCodeMarkdown())
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) == 0 {
		t.Fatal("no TOML example in docs/cron.md")
	}
	for _, b := range blocks {
		cfg, err := config.Parse("docs/cron.md", []byte(b[1]), 0o600)
		if err != nil {
			t.Errorf("config example does not parse: %v", err)
			continue
		}
		kinds := map[config.Kind]int{}
		for _, j := range cfg.Jobs {
			kinds[j.Kind]++
		}
		if kinds[config.KindFetch] != 3 {
			t.Errorf("example should be three fetch jobs: %v", kinds)
		}
		// And mailark run accepts it (URLs, archives, secrets, durations).
		p := writeConfig(t, strings.Replace(b[1], `log_file = "~/.local/state/mailark/mailark.log"`, "", 1))
		eng := &stubEngine{}
		if r := runCLI(t, eng, false, "run", "--dry-run", "--config", p); r.err != nil || len(eng.calls) != 3 {
			t.Errorf("run --dry-run of the example: %v, calls %v", r.err, eng.calls)
		}
	}
}
