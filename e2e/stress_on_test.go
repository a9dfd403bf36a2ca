//go:build stress

package e2e

// `make test-stress` (-tags stress): at least 50 kill points per
// operation, on a bigger account.
const (
	killPoints   = 50
	killMessages = 600
	stress       = true
)
