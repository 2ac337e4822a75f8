package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/client"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func newGetCmd(o *clientOptions) *cobra.Command {
	get := &cobra.Command{
		Use:   "get",
		Short: "Show models, versions, pipelines, datasets, training jobs and workers",
	}
	get.AddCommand(
		&cobra.Command{
			Use:   "models",
			Short: "List models",
			Args:  cobra.NoArgs,
			RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
				models, err := c.AllModels(cmd.Context(), &registryv1.ListModelsRequest{PageSize: 500})
				if err != nil {
					return err
				}
				return o.emit(cmd.OutOrStdout(), &registryv1.ListModelsResponse{Models: models}, func(w io.Writer) error {
					row(w, "NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION")
					for _, m := range models {
						row(w, m.GetName(), m.GetLatestVersion(), orDash(aliasList(m.GetAliases())), when(m.GetUpdateTime()), m.GetDescription())
					}
					return nil
				})
			}),
		},
		&cobra.Command{
			Use:   "model NAME",
			Short: "Show a model and its aliases",
			Args:  cobra.ExactArgs(1),
			RunE:  o.run(getModel(o)),
		},
		&cobra.Command{
			Use:   "versions MODEL",
			Short: "List the versions of a model",
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
				versions, err := c.AllModelVersions(cmd.Context(), &registryv1.ListModelVersionsRequest{Model: args[0], PageSize: 500})
				if err != nil {
					return err
				}
				return o.emit(cmd.OutOrStdout(), &registryv1.ListModelVersionsResponse{Versions: versions}, func(w io.Writer) error {
					row(w, "VERSION", "STATUS", "ALIASES", "SHA256", "METRICS", "CREATED")
					for _, v := range versions {
						row(w, v.GetVersion(), statusName(v.GetStatus()), orDash(strings.Join(v.GetAliases(), ",")),
							short(v.GetArtifactSha256()), orDash(pairs(v.GetMetrics(), num)), when(v.GetCreateTime()))
					}
					return nil
				})
			}),
		},
		&cobra.Command{
			Use:   "version MODEL VERSION | MODEL@VERSION",
			Short: "Show one model version (VERSION may also be an alias: credit@production)",
			Args:  cobra.RangeArgs(1, 2),
			RunE:  o.run(getVersion(o)),
		},
		&cobra.Command{
			Use:   "pipelines",
			Short: "List pipelines (latest version of each)",
			Args:  cobra.NoArgs,
			RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
				pipes, err := c.AllPipelines(cmd.Context(), &registryv1.ListPipelinesRequest{PageSize: 500})
				if err != nil {
					return err
				}
				return o.emit(cmd.OutOrStdout(), &registryv1.ListPipelinesResponse{Pipelines: pipes}, func(w io.Writer) error {
					row(w, "NAME", "VERSION", "MODEL", "DATASET", "DIGEST", "CREATED BY", "CREATED")
					for _, p := range pipes {
						row(w, p.GetName(), p.GetVersion(), p.GetModel(), orDash(p.GetDataset()), short(p.GetDigest()), orDash(p.GetCreatedBy()), when(p.GetCreateTime()))
					}
					return nil
				})
			}),
		},
		newGetPipelineCmd(o),
		newGetDatasetsCmd(o),
		newGetDatasetCmd(o),
		newGetJobsCmd(o),
		newGetJobCmd(o),
		newGetWorkersCmd(o),
		newGetEvaluationsCmd(o),
	)
	return get
}

func getModel(o *clientOptions) func(*cobra.Command, []string, *client.Client) error {
	return func(cmd *cobra.Command, args []string, c *client.Client) error {
		m, err := c.GetModel(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return o.emit(cmd.OutOrStdout(), m, func(w io.Writer) error {
			field(w, "Name", m.GetName())
			field(w, "Description", m.GetDescription())
			field(w, "Latest version", strconv.FormatInt(m.GetLatestVersion(), 10))
			field(w, "Tags", pairs(m.GetTags(), str))
			field(w, "Created", when(m.GetCreateTime()))
			field(w, "Updated", when(m.GetUpdateTime()))
			if len(m.GetAliases()) == 0 {
				fmt.Fprintln(w, "\nNo aliases.")
				return nil
			}
			fmt.Fprintln(w)
			row(w, "ALIAS", "VERSION", "PREVIOUS", "UPDATED BY", "UPDATED")
			for _, name := range sortedKeys(m.GetAliases()) {
				// The model lists where each alias points; the alias says who moved it and when.
				a, err := c.GetAlias(cmd.Context(), m.GetName(), name)
				if err != nil {
					return err
				}
				row(w, name, a.GetVersion(), versionOrDash(a.GetPreviousVersion()), orDash(a.GetUpdatedBy()), when(a.GetUpdateTime()))
			}
			return nil
		})
	}
}

func getVersion(o *clientOptions) func(*cobra.Command, []string, *client.Client) error {
	return func(cmd *cobra.Command, args []string, c *client.Client) error {
		model, ref := "", ""
		if len(args) == 2 {
			model, ref = args[0], args[1]
		} else {
			var ok bool
			if model, ref, ok = strings.Cut(args[0], "@"); !ok {
				return fmt.Errorf("want MODEL VERSION or MODEL@VERSION, got %q", args[0])
			}
		}
		version, err := resolveVersion(cmd, c, model, ref)
		if err != nil {
			return err
		}
		v, err := c.GetModelVersion(cmd.Context(), model, version)
		if err != nil {
			return err
		}
		return o.emit(cmd.OutOrStdout(), v, func(w io.Writer) error {
			printVersion(w, v)
			return nil
		})
	}
}

// resolveVersion reads "3", "v3" or an alias name.
func resolveVersion(cmd *cobra.Command, c *client.Client, model, ref string) (int64, error) {
	if n, err := strconv.ParseInt(strings.TrimPrefix(ref, "v"), 10, 64); err == nil {
		return n, nil
	}
	a, err := c.GetAlias(cmd.Context(), model, ref)
	if err != nil {
		return 0, err
	}
	return a.GetVersion(), nil
}

func printVersion(w io.Writer, v *registryv1.ModelVersion) {
	field(w, "Model", v.GetModel())
	field(w, "Version", strconv.FormatInt(v.GetVersion(), 10))
	status := statusName(v.GetStatus())
	if v.GetStatusReason() != "" {
		status += " (" + v.GetStatusReason() + ")"
	}
	field(w, "Status", status)
	field(w, "Aliases", strings.Join(v.GetAliases(), ", "))
	field(w, "Artifact", v.GetArtifactUri())
	field(w, "SHA256", v.GetArtifactSha256())
	field(w, "Size", bytesSize(v.GetSizeBytes()))
	field(w, "Format", v.GetFormat())
	field(w, "Metrics", pairs(v.GetMetrics(), num))
	field(w, "Params", compactJSON(v.GetParams()))
	field(w, "Tags", pairs(v.GetTags(), str))
	field(w, "Created", when(v.GetCreateTime()))
	lin := v.GetLineage()
	if ds := lin.GetDataset(); ds != "" {
		if lin.GetDatasetVersion() > 0 {
			ds += "@" + strconv.FormatInt(lin.GetDatasetVersion(), 10)
		}
		if lin.GetDatasetDigest() != "" {
			ds += " (sha256 " + short(lin.GetDatasetDigest()) + ")"
		}
		field(w, "Dataset", ds)
	}
	if p := lin.GetPipeline(); p != "" {
		if lin.GetPipelineVersion() > 0 {
			p += "@" + strconv.FormatInt(lin.GetPipelineVersion(), 10)
		}
		field(w, "Pipeline", p)
	}
	field(w, "Training job", lin.GetTrainingJob())
	field(w, "Trainer", lin.GetTrainer())
	field(w, "Worker", lin.GetWorker())
	field(w, "Code", lin.GetCodeRef())
}

func newGetPipelineCmd(o *clientOptions) *cobra.Command {
	var version int64
	cmd := &cobra.Command{
		Use:   "pipeline NAME",
		Short: "Show a pipeline with its full spec (defaults filled in)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			p, err := c.GetPipeline(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), p, func(w io.Writer) error {
				field(w, "Name", p.GetName())
				field(w, "Version", strconv.FormatInt(p.GetVersion(), 10))
				field(w, "Model", p.GetModel())
				field(w, "Dataset", p.GetDataset())
				field(w, "Digest", p.GetDigest())
				field(w, "Created", when(p.GetCreateTime()))
				field(w, "Created by", p.GetCreatedBy())
				if p.GetSpec() == nil {
					return nil
				}
				spec, err := toYAML(p.GetSpec())
				if err != nil {
					return err
				}
				// The spec goes after the aligned fields, so the tabwriter leaves it as it is.
				fmt.Fprintln(w, "Spec:")
				for line := range strings.Lines(string(spec)) {
					fmt.Fprint(w, "  "+line)
				}
				return nil
			})
		}),
	}
	cmd.Flags().Int64Var(&version, "version", 0, "pipeline version (default: the latest)")
	return cmd
}

func statusName(s registryv1.VersionStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "VERSION_STATUS_"))
}

func aliasList(aliases map[string]int64) string {
	return pairs(aliases, func(v int64) string { return "v" + strconv.FormatInt(v, 10) })
}

func versionOrDash(v int64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
