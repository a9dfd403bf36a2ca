package restore

import (
	"os"
	"testing"
)

// TestMain keeps the restore journal and ledgers of the tests (and of the
// child processes the kill test starts) out of the user's state directory.
func TestMain(m *testing.M) {
	if os.Getenv("XDG_STATE_HOME") == "" || os.Getenv(killChildEnv) == "" {
		dir, err := os.MkdirTemp("", "mailark-restore-state-")
		if err != nil {
			panic(err)
		}
		os.Setenv("XDG_STATE_HOME", dir)
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}
