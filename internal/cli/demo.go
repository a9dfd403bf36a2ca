package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *app) demoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "demo",
		Short:   "Show mailark at work on embedded servers (no network, nothing to set up)",
		Example: `  mailark demo`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			return a.runDemo(cmd.Context())
		},
	}
	return cmd
}

func (a *app) runDemo(ctx context.Context) error { return notBuilt("demo") }
