package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/client"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func newAuditCmd(o *clientOptions) *cobra.Command {
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the tamper-evident audit log",
	}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit hash chain; exit 1 when it is broken",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			res, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if err := o.emit(cmd.OutOrStdout(), res, func(w io.Writer) error {
				if res.GetOk() {
					fmt.Fprintln(w, auditVerdict(res))
				}
				return nil
			}); err != nil {
				return err
			}
			if !res.GetOk() {
				fmt.Fprintln(cmd.ErrOrStderr(), auditVerdict(res))
				return exitError{code: 1}
			}
			return nil
		}),
	}
	var resource string
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit records, oldest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			records, err := c.AllAuditRecords(cmd.Context(), &registryv1.ListAuditRecordsRequest{Resource: resource, PageSize: 1000})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), &registryv1.ListAuditRecordsResponse{Records: records}, func(w io.Writer) error {
				if len(records) == 0 {
					fmt.Fprintln(w, "No audit records.")
					return nil
				}
				row(w, "SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "REQUEST ID")
				for _, r := range records {
					row(w, r.GetSeq(), when(r.GetTime()), r.GetActor(), r.GetAction(), r.GetResource(), orDash(r.GetRequestId()))
				}
				return nil
			})
		}),
	}
	list.Flags().StringVar(&resource, "resource", "", `only records about this resource, e.g. "models/credit"`)
	audit.AddCommand(verify, list)
	return audit
}

func auditVerdict(res *registryv1.VerifyAuditResponse) string {
	if res.GetOk() {
		return fmt.Sprintf("audit log intact: %d records, head hash %s", res.GetRecords(), orDash(res.GetHeadHash()))
	}
	return fmt.Sprintf("audit log BROKEN at record %d: %s (%d records checked)", res.GetFirstBadSeq(), res.GetProblem(), res.GetRecords())
}
