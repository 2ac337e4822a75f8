package main

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/client"
	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// feedbackChunk is how many feedback rows one request carries (the API's limit).
const feedbackChunk = 10000

// addMonitorCommands adds the monitoring verbs: drift, compare, feedback,
// and get alerts / get windows.
func addMonitorCommands(root *cobra.Command, o *clientOptions) {
	root.AddCommand(newDriftCmd(o), newCompareCmd(o), newFeedbackCmd(o))
	for _, c := range root.Commands() {
		if c.Name() == "get" {
			c.AddCommand(newGetAlertsCmd(o), newGetWindowsCmd(o))
		}
	}
}

// parseSince reads --since: a duration back from now ("24h", "7d") or an
// RFC 3339 time.
func parseSince(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return timestamppb.New(t), nil
	}
	d, err := pipeline.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("--since %q: want a duration (24h, 7d) or an RFC 3339 time", s)
	}
	return timestamppb.New(time.Now().Add(-d.Duration)), nil
}

func newDriftCmd(o *clientOptions) *cobra.Command {
	var (
		feature, method, since, env string
		version                     int64
		all                         bool
	)
	cmd := &cobra.Command{
		Use:   "drift MODEL",
		Short: "Show a model's drift series: each feature's score per window",
		Long: "Drift lists the drift score of every feature in each closed window of the model: by default\n" +
			"the method the alert rules read (the pipeline's monitoring.drift.method), with its threshold;\n" +
			"--method picks another (psi, ks, wasserstein, chi2, js), --all shows every method. Features\n" +
			"_prediction and _prediction_label are the model's outputs, compared with its first window.",
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			from, err := parseSince(since)
			if err != nil {
				return err
			}
			resp, err := c.GetDriftSeries(cmd.Context(), &monitorv1.GetDriftSeriesRequest{Model: args[0], Version: version, Feature: feature,
				Method: method, Environment: env, Since: from})
			if err != nil {
				return err
			}
			if method == "" && !all {
				kept := resp.GetPoints()[:0]
				for _, p := range resp.GetPoints() {
					if p.GetAlerting() {
						kept = append(kept, p)
					}
				}
				resp.Points = kept
			}
			return o.emit(cmd.OutOrStdout(), resp, func(w io.Writer) error {
				if len(resp.GetPoints()) == 0 {
					fmt.Fprintln(w, "No drift scores (windows are scored when they close).")
					return nil
				}
				row(w, "WINDOW", "VERSION", "ENVIRONMENT", "FEATURE", "METHOD", "SCORE", "P-VALUE", "SAMPLES", "THRESHOLD")
				for _, p := range resp.GetPoints() {
					pv := "-"
					if p.PValue != nil {
						pv = num(p.GetPValue())
					}
					thr := "-"
					if p.GetAlerting() {
						thr = num(p.GetThreshold())
						if p.GetScore() > p.GetThreshold() {
							thr += " EXCEEDED"
						}
					}
					row(w, when(p.GetWindowStart()), p.GetVersion(), p.GetEnvironment(), p.GetFeature(), p.GetMethod(), num(p.GetScore()), pv,
						p.GetSamples(), thr)
				}
				if resp.GetTruncated() {
					fmt.Fprintln(w, "(cut at the server's limit: narrow it with --since, --feature or --version)")
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&feature, "feature", "", "only this feature")
	cmd.Flags().StringVar(&method, "method", "", "only this method: psi, ks, wasserstein, chi2 or js")
	cmd.Flags().BoolVar(&all, "all", false, "every method, not only the one the alert rules read")
	cmd.Flags().StringVar(&since, "since", "24h", "windows since this long ago (24h, 7d) or this RFC 3339 time")
	cmd.Flags().Int64Var(&version, "version", 0, "only this model version")
	cmd.Flags().StringVar(&env, "environment", "", "only this environment (production, staging)")
	return cmd
}

func newCompareCmd(o *clientOptions) *cobra.Command {
	var (
		since, env string
	)
	cmd := &cobra.Command{
		Use:   "compare MODEL BASELINE CANDIDATE",
		Short: "Compare two versions' live traffic: volume, errors, latency, prediction drift, metrics",
		Args:  cobra.ExactArgs(3),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			from, err := parseSince(since)
			if err != nil {
				return err
			}
			base, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("BASELINE %q is not a version number", args[1])
			}
			cand, err := strconv.ParseInt(args[2], 10, 64)
			if err != nil {
				return fmt.Errorf("CANDIDATE %q is not a version number", args[2])
			}
			resp, err := c.CompareVersions(cmd.Context(), &monitorv1.CompareVersionsRequest{Model: args[0], Environment: env,
				BaselineVersion: base, CandidateVersion: cand, Since: from})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), resp, func(w io.Writer) error {
				row(w, "VERSION", "REQUESTS", "ERRORS", "ERROR RATE", "P50 MS", "P99 MS", "MEAN PREDICTION", "LABELLED", "METRICS")
				for _, t := range []*monitorv1.VersionTraffic{resp.GetBaseline(), resp.GetCandidate()} {
					row(w, t.GetVersion(), t.GetRequests(), t.GetErrors(), num(t.GetErrorRate()), num(t.GetLatencyP50Ms()), num(t.GetLatencyP99Ms()),
						num(t.GetPredictionMean()), t.GetLabelled(), orDash(pairs(t.GetMetrics(), num)))
				}
				fmt.Fprintln(w)
				for _, d := range []struct {
					name string
					v    *float64
				}{{"Prediction PSI", resp.PredictionPsi}, {"Prediction KS", resp.PredictionKs}, {"KS p-value", resp.PredictionKsPValue},
					{"Label JS", resp.LabelJs}} {
					if d.v != nil {
						field(w, d.name, num(*d.v))
					}
				}
				field(w, "Since", when(resp.GetSince()))
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&since, "since", "1h", "traffic since this long ago (1h, 7d) or this RFC 3339 time")
	cmd.Flags().StringVar(&env, "environment", "production", "the environment both versions serve")
	return cmd
}

func newFeedbackCmd(o *clientOptions) *cobra.Command {
	var (
		file    string
		row     int32
		isValue bool
	)
	cmd := &cobra.Command{
		Use:   "feedback PREDICTION_ID LABEL | --file FILE",
		Short: "Send the ground truth of logged predictions (a label, or --value for regression)",
		Long: "Feedback tells the monitor what really happened to a prediction, by the prediction id its\n" +
			"response carried (and --row for a multi-row request). The monitor joins it within the label\n" +
			"horizon and measures live accuracy, AUC, RMSE ... per window.\n\n" +
			"--file sends a batch: CSV with a header (prediction_id, and label or value; row optional) or\n" +
			"JSON lines ({\"predictionId\": \"...\", \"row\": 0, \"label\": \"yes\"}; .jsonl or .ndjson).",
		Args: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			var batch []*monitorv1.Feedback
			if file != "" {
				var err error
				if batch, err = readFeedbackFile(file); err != nil {
					return err
				}
			} else {
				f := &monitorv1.Feedback{PredictionId: args[0], Row: row, Truth: &monitorv1.Feedback_Label{Label: args[1]}}
				if isValue {
					v, err := strconv.ParseFloat(args[1], 64)
					if err != nil {
						return fmt.Errorf("--value: %q is not a number", args[1])
					}
					f.Truth = &monitorv1.Feedback_Value{Value: v}
				}
				batch = append(batch, f)
			}
			total := &monitorv1.SubmitFeedbackResponse{}
			for start := 0; start < len(batch); start += feedbackChunk {
				resp, err := c.SubmitFeedback(cmd.Context(), batch[start:min(start+feedbackChunk, len(batch))])
				if err != nil {
					return fmt.Errorf("feedback rows %d-%d: %w", start+1, min(start+feedbackChunk, len(batch)), err)
				}
				total.Accepted += resp.GetAccepted()
				total.Unknown += resp.GetUnknown()
				if room := 20 - len(total.UnknownPredictions); room > 0 {
					total.UnknownPredictions = append(total.UnknownPredictions, resp.GetUnknownPredictions()[:min(room, len(resp.GetUnknownPredictions()))]...)
				}
			}
			return o.emit(cmd.OutOrStdout(), total, func(w io.Writer) error {
				fmt.Fprintf(w, "%d accepted, %d for predictions not logged (yet)\n", total.GetAccepted(), total.GetUnknown())
				if len(total.GetUnknownPredictions()) > 0 {
					fmt.Fprintf(w, "Not logged: %s (kept: they join if logged within the label horizon)\n", strings.Join(total.GetUnknownPredictions(), ", "))
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&file, "file", "", "send a batch from a CSV or JSON-lines file")
	cmd.Flags().Int32Var(&row, "row", 0, "the row's index in the predicted request")
	cmd.Flags().BoolVar(&isValue, "value", false, "LABEL is a number: the true value of a regression")
	return cmd
}

// readFeedbackFile reads a CSV (header: prediction_id, row, label, value)
// or JSON-lines batch; each record has a label or a value.
func readFeedbackFile(path string) ([]*monitorv1.Feedback, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return readFeedbackJSONL(f)
	}
	return readFeedbackCSV(f)
}

func readFeedbackCSV(r io.Reader) ([]*monitorv1.Feedback, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("feedback csv: read the header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.ReplaceAll(strings.TrimSpace(h), "_", ""))] = i
	}
	idCol, ok := col["predictionid"]
	if !ok {
		return nil, errors.New("feedback csv: the header has no prediction_id column")
	}
	labelCol, hasLabel := col["label"]
	valueCol, hasValue := col["value"]
	rowCol, hasRow := col["row"]
	if !hasLabel && !hasValue {
		return nil, errors.New("feedback csv: the header has neither a label nor a value column")
	}
	var out []*monitorv1.Feedback
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("feedback csv: %w", err)
		}
		fb := &monitorv1.Feedback{PredictionId: rec[idCol]}
		if hasRow && rec[rowCol] != "" {
			n, err := strconv.ParseInt(rec[rowCol], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("feedback csv line %d: row %q is not a number", line, rec[rowCol])
			}
			fb.Row = int32(n)
		}
		switch {
		case hasLabel && rec[labelCol] != "":
			fb.Truth = &monitorv1.Feedback_Label{Label: rec[labelCol]}
		case hasValue && rec[valueCol] != "":
			v, err := strconv.ParseFloat(rec[valueCol], 64)
			if err != nil {
				return nil, fmt.Errorf("feedback csv line %d: value %q is not a number", line, rec[valueCol])
			}
			fb.Truth = &monitorv1.Feedback_Value{Value: v}
		default:
			return nil, fmt.Errorf("feedback csv line %d: neither a label nor a value", line)
		}
		out = append(out, fb)
	}
}

func readFeedbackJSONL(r io.Reader) ([]*monitorv1.Feedback, error) {
	var out []*monitorv1.Feedback
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var rec struct {
			PredictionID  string   `json:"predictionId"`
			PredictionID2 string   `json:"prediction_id"`
			Row           int32    `json:"row"`
			Label         *string  `json:"label"`
			Value         *float64 `json:"value"`
		}
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			return nil, fmt.Errorf("feedback line %d: %w", line, err)
		}
		fb := &monitorv1.Feedback{PredictionId: cmp.Or(rec.PredictionID, rec.PredictionID2), Row: rec.Row}
		switch {
		case rec.Label != nil:
			fb.Truth = &monitorv1.Feedback_Label{Label: *rec.Label}
		case rec.Value != nil:
			fb.Truth = &monitorv1.Feedback_Value{Value: *rec.Value}
		default:
			return nil, fmt.Errorf("feedback line %d: neither a label nor a value", line)
		}
		out = append(out, fb)
	}
	return out, sc.Err()
}

func newGetAlertsCmd(o *clientOptions) *cobra.Command {
	var (
		model  string
		firing bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List monitoring alerts, newest first (--firing: only those firing now)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			req := &monitorv1.ListAlertsRequest{Model: model, PageSize: int32(min(max(limit, 1), 1000))}
			if firing {
				req.State = monitorv1.AlertState_ALERT_STATE_FIRING
			}
			var alerts []*monitorv1.Alert
			if limit > 0 {
				resp, err := c.ListAlerts(cmd.Context(), req)
				if err != nil {
					return err
				}
				alerts = resp.GetAlerts()
			} else {
				req.PageSize = 500
				var err error
				if alerts, err = c.AllAlerts(cmd.Context(), req); err != nil {
					return err
				}
			}
			return o.emit(cmd.OutOrStdout(), &monitorv1.ListAlertsResponse{Alerts: alerts}, func(w io.Writer) error {
				if len(alerts) == 0 {
					fmt.Fprintln(w, "No alerts.")
					return nil
				}
				row(w, "ID", "MODEL VERSION", "KIND", "RULE", "STATE", "VALUE", "THRESHOLD", "LAST", "FIRED", "RESOLVED")
				for _, a := range alerts {
					row(w, a.GetId(), fmt.Sprintf("%s@%d", a.GetModel(), a.GetModelVersion()), a.GetKind(), a.GetRule(), alertState(a),
						num(a.GetValue()), thresholdCell(a), num(a.GetLastValue()), when(a.GetFireTime()), orDash(when(a.GetResolveTime())))
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&model, "model", "", "only alerts of this model")
	cmd.Flags().BoolVar(&firing, "firing", false, "only alerts firing now")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many alerts (0: all)")
	return cmd
}

func alertState(a *monitorv1.Alert) string {
	return strings.ToLower(strings.TrimPrefix(a.GetState().String(), "ALERT_STATE_"))
}

func thresholdCell(a *monitorv1.Alert) string {
	if a.GetKind() == "performance" && a.GetThreshold() == 0 {
		return "-"
	}
	return num(a.GetThreshold())
}

func newGetWindowsCmd(o *clientOptions) *cobra.Command {
	var (
		version int64
		env     string
		limit   int
	)
	cmd := &cobra.Command{
		Use:   "windows MODEL",
		Short: "List a model's monitoring windows, newest first: traffic, errors, latency, labels",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			resp, err := c.ListWindows(cmd.Context(), &monitorv1.ListWindowsRequest{Model: args[0], Version: version, Environment: env,
				PageSize: int32(min(max(limit, 1), 1000))})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), resp, func(w io.Writer) error {
				if len(resp.GetWindows()) == 0 {
					fmt.Fprintln(w, "No windows.")
					return nil
				}
				row(w, "START", "END", "VERSION", "ENVIRONMENT", "REQUESTS", "ERROR RATE", "P50 MS", "P99 MS", "LABELLED", "LATE", "STATE")
				for _, x := range resp.GetWindows() {
					state := "open"
					if x.GetClosed() {
						state = "closed"
					}
					row(w, when(x.GetStart()), when(x.GetEnd()), x.GetVersion(), x.GetEnvironment(), x.GetRequests(), num(x.GetErrorRate()),
						num(x.GetLatencyP50Ms()), num(x.GetLatencyP99Ms()), x.GetLabelled(), x.GetLateRecords(), state)
				}
				return nil
			})
		}),
	}
	cmd.Flags().Int64Var(&version, "version", 0, "only this model version")
	cmd.Flags().StringVar(&env, "environment", "", "only this environment")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many windows")
	return cmd
}
