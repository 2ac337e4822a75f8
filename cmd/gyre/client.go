package main

// The client verbs people type: apply, get, describe, dataset, train, logs,
// cancel, alias, lineage, audit, demo. They talk to a Gyre server over its
// REST API (pkg/client).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/gyreml/gyre/pkg/client"
)

const defaultServer = "http://127.0.0.1:8080"

// clientOptions are the flags every client verb shares.
type clientOptions struct {
	server string
	output string
}

func addClientCommands(root *cobra.Command) {
	o := &clientOptions{}
	server := os.Getenv("GYRE_SERVER")
	if server == "" {
		server = defaultServer
	}
	root.PersistentFlags().StringVar(&o.server, "server", server, "Gyre server URL (env GYRE_SERVER)")
	root.PersistentFlags().StringVarP(&o.output, "output", "o", "table", "output format of client verbs: table, json or yaml")
	root.AddCommand(
		newApplyCmd(o),
		newGetCmd(o),
		newAliasCmd(o),
		newLineageCmd(o),
		newAuditCmd(o),
		newDemoCmd(o),
		newDatasetCmd(o),
		newDescribeCmd(o),
		newTrainCmd(o),
		newLogsCmd(o),
		newCancelCmd(o),
		newEvaluateCmd(o),
		newReportCmd(o),
	)
	addDescribeEvaluation(root, o)
	addDeploymentCommands(root, o)
	addMonitorCommands(root, o)
}

// serverURL accepts "host:port" as well as a full URL.
func (o *clientOptions) serverURL() string {
	s := strings.TrimRight(o.server, "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

func (o *clientOptions) client() *client.Client { return client.New(o.serverURL()) }

// run wraps a verb: it checks the shared flags, and prints server errors in
// full (every field problem on its own line) before exiting 1.
func (o *clientOptions) run(fn func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		switch o.output {
		case "table", "json", "yaml":
		default:
			return fmt.Errorf("unknown output format %q: use table, json or yaml", o.output)
		}
		err := fn(cmd, args, o.client())
		if err == nil {
			return nil
		}
		var exit exitError
		if errors.As(err, &exit) {
			return err
		}
		printError(cmd.ErrOrStderr(), o.serverURL(), err)
		return exitError{code: 1}
	}
}

func printError(w io.Writer, server string, err error) {
	var ae *client.APIError
	var ue *url.Error
	switch {
	case errors.As(err, &ae):
		fmt.Fprintln(w, "error:", ae.Summary())
		for _, f := range ae.Fields {
			fmt.Fprintln(w, "  "+f.String())
		}
		if ae.HTTPStatus >= 500 && ae.RequestID != "" {
			fmt.Fprintf(w, "  (request id %s: the server log has the cause)\n", ae.RequestID)
		}
	case errors.As(err, &ue) && errors.Is(err, syscall.ECONNREFUSED):
		fmt.Fprintf(w, "error: no Gyre server at %s: start one with `gyre dev`, or point --server (or GYRE_SERVER) at yours\n", server)
	default:
		fmt.Fprintln(w, "error:", err)
	}
}

// emit writes msg as JSON or YAML, or calls table for the human view.
func (o *clientOptions) emit(w io.Writer, msg proto.Message, table func(w io.Writer) error) error {
	switch o.output {
	case "json":
		raw, err := protojson.Marshal(msg)
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		// protojson varies its whitespace on purpose; re-indenting makes the output stable.
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			return fmt.Errorf("indent json: %w", err)
		}
		out.WriteByte('\n')
		_, err = out.WriteTo(w)
		return err
	case "yaml":
		raw, err := toYAML(msg)
		if err != nil {
			return err
		}
		_, err = w.Write(raw)
		return err
	}
	tw := newTable(w)
	if err := table(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// newTable aligns tab-separated cells in columns two spaces apart.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func toYAML(msg proto.Message) ([]byte, error) {
	raw, err := protojson.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	out, err := yaml.JSONToYAML(raw)
	if err != nil {
		return nil, fmt.Errorf("convert to yaml: %w", err)
	}
	return out, nil
}

// row writes tab-separated cells as one table line.
func row(w io.Writer, cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(parts, "\t"))
}

// field writes "Label:\tvalue" unless the value is empty.
func field(w io.Writer, label, value string) {
	if value != "" {
		fmt.Fprintf(w, "%s:\t%s\n", label, value)
	}
}

func when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().Local().Format("2006-01-02 15:04:05")
}

// orDash keeps empty table cells visible.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// pairs renders a map as "k=v, k=v" sorted by key.
func pairs[V any](m map[string]V, format func(V) string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + format(m[k])
	}
	return strings.Join(parts, ", ")
}

func str(s string) string { return s }

func num(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

func bytesSize(n int64) string {
	switch {
	case n <= 0:
		return ""
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// compactJSON renders a small JSON value on one line.
func compactJSON(msg proto.Message) string {
	raw, err := protojson.Marshal(msg)
	if err != nil {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	out, _ := json.Marshal(v)
	if string(out) == "{}" {
		return ""
	}
	return string(out)
}
