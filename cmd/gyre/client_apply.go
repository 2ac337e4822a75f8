package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/client"
)

func newApplyCmd(o *clientOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update a pipeline from its YAML (-f - reads stdin)",
		Long: "Apply sends the Pipeline document to the registry, which validates it whole and stores it as a\n" +
			"new version unless it is identical to the latest one. Every problem is listed by path.",
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			manifest, err := readManifest(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			resp, err := c.ApplyPipeline(cmd.Context(), manifest)
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), resp, func(w io.Writer) error {
				p := resp.GetPipeline()
				if resp.GetCreated() {
					fmt.Fprintf(w, "pipeline %s version %d created\n", p.GetName(), p.GetVersion())
				} else {
					fmt.Fprintf(w, "pipeline %s unchanged (version %d)\n", p.GetName(), p.GetVersion())
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "pipeline file, or - for stdin")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func readManifest(stdin io.Reader, file string) (string, error) {
	var raw []byte
	var err error
	if file == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("read pipeline %s: %w", file, err)
	}
	if len(raw) == 0 {
		return "", fmt.Errorf("pipeline %s is empty", file)
	}
	return string(raw), nil
}
