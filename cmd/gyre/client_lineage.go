package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/client"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func newLineageCmd(o *clientOptions) *cobra.Command {
	var upstream, downstream bool
	var depth int32
	cmd := &cobra.Command{
		Use:   "lineage NODE",
		Short: "Show where a node came from (--upstream) and what it led to (--downstream)",
		Long: "A node is kind:name[@version]: model:credit@2, dataset:applications@3, pipeline:credit@1, job:<id>.\n" +
			"A bare name@version means a model. Without --upstream or --downstream, both are shown.",
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			if upstream && downstream {
				return fmt.Errorf("use --upstream or --downstream, not both (neither shows both)")
			}
			dir := registryv1.LineageDirection_LINEAGE_DIRECTION_BOTH
			if upstream {
				dir = registryv1.LineageDirection_LINEAGE_DIRECTION_UPSTREAM
			} else if downstream {
				dir = registryv1.LineageDirection_LINEAGE_DIRECTION_DOWNSTREAM
			}
			node := args[0]
			if !strings.Contains(node, ":") {
				node = "model:" + node
			}
			lin, err := c.GetLineage(cmd.Context(), &registryv1.GetLineageRequest{Node: node, Direction: dir, Depth: depth})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), lin, func(w io.Writer) error {
				printLineage(w, lin, dir)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&upstream, "upstream", false, "only what the node came from")
	cmd.Flags().BoolVar(&downstream, "downstream", false, "only what came from the node")
	cmd.Flags().Int32Var(&depth, "depth", 0, "how many edges to follow (0: all)")
	return cmd
}

// printLineage draws the graph as trees rooted at lin.Root: upstream follows
// edges backwards (what the node came from), downstream forwards.
func printLineage(w io.Writer, lin *registryv1.Lineage, dir registryv1.LineageDirection) {
	attrs := map[string]map[string]string{}
	for _, n := range lin.GetNodes() {
		attrs[n.GetId()] = n.GetAttributes()
	}
	parents := map[string][]*registryv1.LineageEdge{}
	children := map[string][]*registryv1.LineageEdge{}
	for _, e := range lin.GetEdges() {
		parents[e.GetTo()] = append(parents[e.GetTo()], e)
		children[e.GetFrom()] = append(children[e.GetFrom()], e)
	}
	t := &treePrinter{w: w, attrs: attrs}
	up := dir != registryv1.LineageDirection_LINEAGE_DIRECTION_DOWNSTREAM
	down := dir != registryv1.LineageDirection_LINEAGE_DIRECTION_UPSTREAM
	if up {
		fmt.Fprintln(w, "Upstream (where it came from):")
		t.print(lin.GetRoot(), parents, func(e *registryv1.LineageEdge) string { return e.GetFrom() })
	}
	if up && down {
		fmt.Fprintln(w)
	}
	if down {
		fmt.Fprintln(w, "Downstream (what it led to):")
		t.print(lin.GetRoot(), children, func(e *registryv1.LineageEdge) string { return e.GetTo() })
	}
}

type treePrinter struct {
	w     io.Writer
	attrs map[string]map[string]string
}

func (t *treePrinter) print(root string, next map[string][]*registryv1.LineageEdge, far func(*registryv1.LineageEdge) string) {
	fmt.Fprintln(t.w, "  "+root+t.describe(root))
	if len(next[root]) == 0 {
		fmt.Fprintln(t.w, "  (nothing recorded)")
		return
	}
	t.walk(root, "  ", next, far, map[string]bool{root: true})
}

func (t *treePrinter) walk(node, indent string, next map[string][]*registryv1.LineageEdge, far func(*registryv1.LineageEdge) string, onPath map[string]bool) {
	edges := next[node]
	sort.Slice(edges, func(i, j int) bool { return far(edges[i]) < far(edges[j]) })
	for i, e := range edges {
		branch, childIndent := "├── ", indent+"│   "
		if i == len(edges)-1 {
			branch, childIndent = "└── ", indent+"    "
		}
		id := far(e)
		line := indent + branch + id + " (" + e.GetRelation() + ")" + t.describe(id)
		// A graph may join again or loop; each path stops at a node it already passed.
		if onPath[id] {
			fmt.Fprintln(t.w, line+" ↺")
			continue
		}
		fmt.Fprintln(t.w, line)
		onPath[id] = true
		t.walk(id, childIndent, next, far, onPath)
		delete(onPath, id)
	}
}

// describe shows what the registry knows about a node, e.g. a model version's
// status or a dataset version's digest; digests are shortened and URIs left
// out to keep one node a line (-o json has them whole).
func (t *treePrinter) describe(id string) string {
	a := t.attrs[id]
	if len(a) == 0 {
		return ""
	}
	shown := make(map[string]string, len(a))
	for k, v := range a {
		switch {
		case k == "uri":
		case k == "artifact_sha256":
			shown["sha256"] = short(v)
		case strings.HasSuffix(k, "sha256"):
			shown[k] = short(v)
		default:
			shown[k] = v
		}
	}
	return "  [" + strings.ReplaceAll(pairs(shown, str), ", ", " ") + "]"
}
