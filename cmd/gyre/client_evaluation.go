package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gyreml/gyre/pkg/client"
	evaluatorv1 "github.com/gyreml/gyre/pkg/pb/gyre/evaluator/v1"
)

// evaluationPoll is how often `evaluate --wait` asks for the evaluation's state.
const evaluationPoll = 500 * time.Millisecond

func newEvaluateCmd(o *clientOptions) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "evaluate MODEL@VERSION",
		Short: "Queue an evaluation of a model version (--wait prints the verdict)",
		Long: "Evaluate queues an evaluation of the model version on its training holdout, against the\n" +
			"production model, decided by the pipeline's gates (registered versions are evaluated on their\n" +
			"own; this asks again). VERSION may also be an alias. With --wait the command ends with the\n" +
			"verdict, each gate and the metrics: exit status 1 when the evaluation failed.",
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx := cmd.Context()
			model, ref, ok := strings.Cut(args[0], "@")
			if !ok || model == "" || ref == "" {
				return fmt.Errorf("want MODEL@VERSION, got %q", args[0])
			}
			version, err := resolveVersion(cmd, c, model, ref)
			if err != nil {
				return err
			}
			e, err := c.Evaluate(ctx, model, version)
			if err != nil {
				return err
			}
			if !wait {
				return o.emit(cmd.OutOrStdout(), e, func(w io.Writer) error {
					fmt.Fprintln(w, describeQueued(e))
					fmt.Fprintf(w, "Follow it: gyre describe evaluation %s\n", e.GetId())
					return nil
				})
			}
			// Machine-readable output keeps stdout for the final evaluation; the story goes to stderr.
			story := cmd.OutOrStdout()
			if o.output != "table" {
				story = cmd.ErrOrStderr()
			}
			fmt.Fprintln(story, describeQueued(e))
			ended, err := waitEvaluation(ctx, c, e, func(e *evaluatorv1.Evaluation) {
				fmt.Fprintf(story, "evaluation %s %s\n", e.GetId(), evaluationState(e))
			})
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("stopped waiting for evaluation %s, which goes on (gyre describe evaluation %s): %w", e.GetId(), e.GetId(), err)
				}
				return err
			}
			if o.output == "table" {
				tw := newTable(story)
				printVerdict(tw, ended)
				if err := tw.Flush(); err != nil {
					return err
				}
			} else if err := o.emit(cmd.OutOrStdout(), ended, nil); err != nil {
				return err
			}
			if ended.GetState() != evaluatorv1.EvaluationState_EVALUATION_STATE_PASSED {
				return exitError{code: 1}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the verdict and print it with each gate and the metrics")
	return cmd
}

func describeQueued(e *evaluatorv1.Evaluation) string {
	return fmt.Sprintf("evaluation %s of %s@%d %s", e.GetId(), e.GetModel(), e.GetVersion(), evaluationState(e))
}

// waitEvaluation polls the evaluation until it has a verdict, calling
// changed each time its state moves on, and returns it as it ended.
func waitEvaluation(ctx context.Context, c *client.Client, e *evaluatorv1.Evaluation, changed func(*evaluatorv1.Evaluation)) (*evaluatorv1.Evaluation, error) {
	tick := time.NewTicker(evaluationPoll)
	defer tick.Stop()
	for !evaluationEnded(e) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		next, err := c.GetEvaluation(ctx, e.GetId())
		if err != nil {
			return nil, err
		}
		if next.GetState() != e.GetState() && !evaluationEnded(next) {
			changed(next)
		}
		e = next
	}
	return e, nil
}

func evaluationEnded(e *evaluatorv1.Evaluation) bool {
	switch e.GetState() {
	case evaluatorv1.EvaluationState_EVALUATION_STATE_PASSED, evaluatorv1.EvaluationState_EVALUATION_STATE_FAILED:
		return true
	}
	return false
}

func evaluationState(e *evaluatorv1.Evaluation) string {
	return strings.ToLower(strings.TrimPrefix(e.GetState().String(), "EVALUATION_STATE_"))
}

// printVerdict writes the outcome people wait for: verdict, reasons, gates, metrics.
func printVerdict(w io.Writer, e *evaluatorv1.Evaluation) {
	fmt.Fprintf(w, "evaluation %s of %s@%d %s\n", e.GetId(), e.GetModel(), e.GetVersion(), strings.ToUpper(evaluationState(e)))
	for _, r := range e.GetReasons() {
		fmt.Fprintln(w, "  "+r)
	}
	if len(e.GetGates()) > 0 {
		fmt.Fprintln(w)
		printGates(w, e.GetGates())
	}
	if len(e.GetMetrics()) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Metrics: "+pairs(e.GetMetrics(), num))
	}
	fmt.Fprintf(w, "Report: gyre report evaluation %s > report.html\n", e.GetId())
}

func printGates(w io.Writer, gates []*evaluatorv1.GateResult) {
	row(w, "GATE", "RESULT", "VALUES", "REASON")
	for _, g := range gates {
		row(w, g.GetExpression(), gateResult(g), orDash(pairs(g.GetValues(), str)), orDash(g.GetReason()))
	}
}

func gateResult(g *evaluatorv1.GateResult) string {
	switch {
	case g.GetSkipped():
		return "skipped"
	case g.GetPassed():
		return "pass"
	}
	return "fail"
}

// gateCount sums up the gates in a list cell: "2/3 passed, 1 skipped".
func gateCount(gates []*evaluatorv1.GateResult) string {
	if len(gates) == 0 {
		return ""
	}
	passed, skipped := 0, 0
	for _, g := range gates {
		switch {
		case g.GetSkipped():
			skipped++
		case g.GetPassed():
			passed++
		}
	}
	s := fmt.Sprintf("%d/%d passed", passed, len(gates)-skipped)
	if skipped > 0 {
		s += fmt.Sprintf(", %d skipped", skipped)
	}
	return s
}

func evaluationDuration(e *evaluatorv1.Evaluation) time.Duration {
	if e.GetCreateTime() == nil || e.GetEndTime() == nil {
		return 0
	}
	return e.GetEndTime().AsTime().Sub(e.GetCreateTime().AsTime())
}

func newGetEvaluationsCmd(o *clientOptions) *cobra.Command {
	var (
		model string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "evaluations",
		Short: "List model evaluations, newest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			req := &evaluatorv1.ListEvaluationsRequest{Model: model, PageSize: 500}
			var evals []*evaluatorv1.Evaluation
			more := false
			if limit > 0 {
				req.PageSize = int32(min(limit, 1000))
				resp, err := c.ListEvaluations(cmd.Context(), req)
				if err != nil {
					return err
				}
				evals, more = resp.GetEvaluations(), resp.GetNextPageToken() != ""
			} else {
				var err error
				if evals, err = c.AllEvaluations(cmd.Context(), req); err != nil {
					return err
				}
			}
			return o.emit(cmd.OutOrStdout(), &evaluatorv1.ListEvaluationsResponse{Evaluations: evals}, func(w io.Writer) error {
				if len(evals) == 0 {
					fmt.Fprintln(w, "No evaluations.")
					return nil
				}
				row(w, "ID", "MODEL VERSION", "STATE", "GATES", "CHAMPION", "DATASET", "CREATED", "DURATION")
				for _, e := range evals {
					row(w, e.GetId(), fmt.Sprintf("%s@%d", e.GetModel(), e.GetVersion()), evaluationState(e), orDash(gateCount(e.GetGates())),
						versionOrDash(e.GetChampionVersion()), orDash(datasetRef(e)), when(e.GetCreateTime()), orDash(formatDuration(evaluationDuration(e))))
				}
				if more {
					fmt.Fprintf(w, "(only the newest %d: --limit 0 lists all)\n", limit)
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&model, "model", "", "only evaluations of this model")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many evaluations (0: all)")
	return cmd
}

func datasetRef(e *evaluatorv1.Evaluation) string {
	if e.GetDataset() == "" {
		return ""
	}
	if e.GetDatasetVersion() == 0 {
		return e.GetDataset()
	}
	return fmt.Sprintf("%s@%d", e.GetDataset(), e.GetDatasetVersion())
}

// addDescribeEvaluation adds `describe evaluation` to the describe verb,
// which the dataset verbs define.
func addDescribeEvaluation(root *cobra.Command, o *clientOptions) {
	for _, c := range root.Commands() {
		if c.Name() == "describe" {
			c.AddCommand(newDescribeEvaluationCmd(o))
			return
		}
	}
}

func newDescribeEvaluationCmd(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "evaluation ID",
		Short: "Show an evaluation in full: state, reasons, metrics, gates, data and champion",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			e, err := c.GetEvaluation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), e, func(w io.Writer) error {
				printEvaluation(w, e)
				return nil
			})
		}),
	}
}

func printEvaluation(w io.Writer, e *evaluatorv1.Evaluation) {
	field(w, "ID", e.GetId())
	field(w, "Model version", fmt.Sprintf("%s@%d", e.GetModel(), e.GetVersion()))
	field(w, "State", evaluationState(e))
	field(w, "Dataset", datasetRef(e))
	if e.GetHoldoutRows() > 0 {
		field(w, "Holdout rows", strconv.FormatInt(e.GetHoldoutRows(), 10))
	}
	champion := "none (no production version to compare with)"
	if e.GetChampionVersion() > 0 {
		champion = fmt.Sprintf("%s@%d", e.GetModel(), e.GetChampionVersion())
	}
	field(w, "Champion", champion)
	field(w, "Report SHA256", e.GetReportSha256())
	field(w, "Created", when(e.GetCreateTime()))
	field(w, "Ended", when(e.GetEndTime()))
	field(w, "Duration", formatDuration(evaluationDuration(e)))
	if e.GetReportSha256() != "" {
		field(w, "Report", "gyre report evaluation "+e.GetId()+" > report.html")
	}
	if len(e.GetReasons()) > 0 {
		fmt.Fprintln(w, "\nReasons:")
		for _, r := range e.GetReasons() {
			fmt.Fprintln(w, "  "+r)
		}
	}
	if len(e.GetMetrics()) > 0 {
		fmt.Fprintln(w)
		row(w, "METRIC", "VALUE")
		for _, k := range sortedKeys(e.GetMetrics()) {
			row(w, k, num(e.GetMetrics()[k]))
		}
	}
	if len(e.GetGates()) > 0 {
		fmt.Fprintln(w)
		printGates(w, e.GetGates())
	}
}

func newReportCmd(o *clientOptions) *cobra.Command {
	report := &cobra.Command{
		Use:   "report",
		Short: "Write a report",
	}
	var force bool
	evaluation := &cobra.Command{
		Use:   "evaluation ID > report.html",
		Short: "Write an evaluation's self-contained HTML report to stdout (-o json|yaml: the report's data)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			out := cmd.OutOrStdout()
			html := o.output == "table"
			if html && !force {
				if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return fmt.Errorf("the report is an HTML page: redirect it to a file (gyre report evaluation %s > report.html), or pass --force", args[0])
				}
			}
			rep, err := c.GetEvaluationReport(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !html {
				return o.emit(out, rep, nil)
			}
			if rep.GetHtml() == "" {
				return fmt.Errorf("evaluation %s has no HTML report", args[0])
			}
			_, err = io.WriteString(out, rep.GetHtml())
			return err
		}),
	}
	evaluation.Flags().BoolVar(&force, "force", false, "write the HTML even when stdout is a terminal")
	report.AddCommand(evaluation)
	return report
}
