package mailerr

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestExitCodes(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	cases := []struct {
		err  error
		code int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailure},
		{E(ErrUsage, nil, "bad flag"), ExitUsage},
		{E(ErrAuth, cause, "login refused"), ExitAuth},
		{E(ErrNetwork, cause, "reset"), ExitNetwork},
		{E(ErrTLS, cause, "cert"), ExitTLS},
		{E(ErrLocked, nil, "locked"), ExitLocked},
		{E(ErrDamaged, nil, "corrupt"), ExitDamaged},
		{E(ErrLocalIO, cause, "disk full"), ExitLocalIO},
		{E(ErrPartial, nil, "2 folders failed"), ExitPartial},
		{E(ErrMismatch, nil, "differ"), ExitMismatch},
		{E(ErrInterrupted, nil, "ctrl-c"), ExitInterrupted},
		// The first specific kind wins over partial.
		{E(ErrPartial, E(ErrAuth, nil, "x"), "y"), ExitAuth},
		{fmt.Errorf("job a: %w", E(ErrNetwork, nil, "x")), ExitNetwork},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.code {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.code)
		}
	}
	err := E(ErrAuth, cause, "login as %s refused", "me")
	if err.Error() != "login as me refused: unexpected EOF" {
		t.Errorf("message %q", err.Error())
	}
	if !errors.Is(err, cause) {
		t.Error("cause not reachable with errors.Is")
	}
}
