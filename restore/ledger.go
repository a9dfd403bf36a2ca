package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
)

// LedgerPathFor is where the ledger of restoring a foreign tree (a mail
// client's folders, which mailark never writes into) to a target lives:
// $XDG_STATE_HOME/mailark/ledgers/ (~/.local/state/... by default), one
// file per tree and target, named after both so a user can tell them
// apart, with a digest that keeps names short and distinct.
func LedgerPathFor(treePath string, target *account.Account) (string, error) {
	abs, err := filepath.Abs(treePath)
	if err != nil {
		return "", mailerr.E(mailerr.ErrUsage, err, "bad archive path %q", treePath)
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" || !filepath.IsAbs(state) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", mailerr.E(mailerr.ErrUsage, err, "cannot find a place for the restore ledger; set XDG_STATE_HOME")
		}
		state = filepath.Join(home, ".local", "state")
	}
	h := sha256.Sum256([]byte(abs + "\n" + target.String()))
	name := readableName(filepath.Base(abs)) + "-" + readableName(target.User+"@"+target.Host) + "-" + hex.EncodeToString(h[:6])
	return filepath.Join(state, "mailark", "ledgers", name+".jsonl"), nil
}

// readableName keeps letters, digits and a few safe characters of s, at
// most 40 of them.
func readableName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case b.Len() >= 40:
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), ".")
}
