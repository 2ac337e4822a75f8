package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/client"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func newAliasCmd(o *clientOptions) *cobra.Command {
	alias := &cobra.Command{
		Use:   "alias",
		Short: "Move a model's aliases (staging, production, ...) and show their history",
	}
	var reason string
	set := &cobra.Command{
		Use:   "set MODEL ALIAS VERSION",
		Short: "Point an alias at a version",
		Args:  cobra.ExactArgs(3),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			version, err := strconv.ParseInt(args[2], 10, 64)
			if err != nil {
				return fmt.Errorf("version %q is not a number", args[2])
			}
			// Read first: on a no-op the server's previous_version is the move before this one.
			before, err := c.GetAlias(cmd.Context(), args[0], args[1])
			if err != nil && !client.HasCode(err, "NOT_FOUND") {
				return err
			}
			a, err := c.SetAlias(cmd.Context(), &registryv1.SetAliasRequest{Model: args[0], Alias: args[1], Version: version, Reason: reason})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), a, func(w io.Writer) error {
				fmt.Fprintln(w, describeAliasMove(a, before.GetVersion()))
				return nil
			})
		}),
	}
	set.Flags().StringVar(&reason, "reason", "", "why (kept in the alias history and the audit log)")

	history := &cobra.Command{
		Use:   "history MODEL [ALIAS]",
		Short: "Show how a model's aliases moved, oldest first",
		Args:  cobra.RangeArgs(1, 2),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			req := &registryv1.ListAliasHistoryRequest{Model: args[0], PageSize: 500}
			if len(args) == 2 {
				req.Alias = args[1]
			}
			changes, err := c.AllAliasHistory(cmd.Context(), req)
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), &registryv1.ListAliasHistoryResponse{Changes: changes}, func(w io.Writer) error {
				printAliasHistory(w, changes)
				return nil
			})
		}),
	}
	alias.AddCommand(set, history)
	return alias
}

// describeAliasMove says where an alias went from the version it had before (0: none).
func describeAliasMove(a *registryv1.Alias, before int64) string {
	switch before {
	case 0:
		return fmt.Sprintf("%s of %s -> version %d (new alias)", a.GetAlias(), a.GetModel(), a.GetVersion())
	case a.GetVersion():
		return fmt.Sprintf("%s of %s -> version %d (unchanged)", a.GetAlias(), a.GetModel(), a.GetVersion())
	}
	return fmt.Sprintf("%s of %s -> version %d (was %d)", a.GetAlias(), a.GetModel(), a.GetVersion(), before)
}

func printAliasHistory(w io.Writer, changes []*registryv1.AliasChange) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "No alias changes.")
		return
	}
	row(w, "TIME", "ALIAS", "FROM", "TO", "BY", "REASON")
	for _, ch := range changes {
		row(w, when(ch.GetChangeTime()), ch.GetAlias(), versionOrDash(ch.GetFromVersion()), versionOrDash(ch.GetToVersion()),
			orDash(ch.GetChangedBy()), orDash(ch.GetReason()))
	}
}
