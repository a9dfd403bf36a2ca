package cli

import (
	"context"
	"fmt"
)

// coreEngine drives mailark's archive, fetch and restore packages.
type coreEngine struct{}

// notBuilt is the honest answer for an operation whose core package is
// not part of this build yet.
func notBuilt(op string) error {
	return fmt.Errorf("%s is not available in this build of mailark yet", op)
}

func (coreEngine) Fetch(ctx context.Context, req FetchRequest) (Stats, error) {
	return Stats{}, notBuilt("fetch")
}

func (coreEngine) Restore(ctx context.Context, req RestoreRequest) (Stats, error) {
	return Stats{}, notBuilt("restore")
}

func (coreEngine) Verify(ctx context.Context, req VerifyRequest) (VerifyReport, error) {
	return VerifyReport{}, notBuilt("verify")
}

func (coreEngine) List(ctx context.Context, archive string) (Listing, error) {
	return Listing{}, notBuilt("ls")
}
