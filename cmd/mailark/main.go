// Command mailark backs up IMAP and POP3 mail into maildir/mbox archives
// and restores them to IMAP. See `mailark --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mailark/mailark/internal/cli"
	"github.com/mailark/mailark/internal/mailerr"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version or VCS revision is used.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the run winds down (archives are left
		// consistent); a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	err := cli.Main(ctx, os.Args[1:], cli.StdEnv(version))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, cli.FormatError(err))
	}
	os.Exit(mailerr.ExitCode(err))
}
