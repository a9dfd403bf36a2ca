//go:build !stress

package e2e

// The fast settings of `make test`: a few kill points per operation, so the
// whole suite stays within minutes on two cores.
const (
	killPoints   = 8
	killMessages = 300
	stress       = false
)
