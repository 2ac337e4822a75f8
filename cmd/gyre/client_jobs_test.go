package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// checkJobVerbs runs in TestClientVerbsAgainstGyreDev, after the demo ran
// twice (four jobs of demo-credit-risk, all succeeded) and dataset version 2
// was pushed; production is the version production points to.
func checkJobVerbs(t *testing.T, srv []string, run func(args ...string) string, matches func(out, pattern string), production *registryv1.ModelVersion) {
	t.Helper()
	gyre := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return runGyre(t, stdin, append(args, srv...)...)
	}
	decode := func(out string, msg proto.Message) {
		t.Helper()
		if err := protojson.Unmarshal([]byte(out), msg); err != nil {
			t.Fatalf("decode %T: %v\n%s", msg, err, out)
		}
	}
	apply := func(manifest string) {
		t.Helper()
		if out, errOut, code := gyre(manifest, "apply", "-f", "-"); code != 0 {
			t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
		}
	}

	// The demo's jobs, newest first, each with the version it registered.
	var list schedulerv1.ListJobsResponse
	decode(run("get", "jobs", "--pipeline", "demo-credit-risk", "-o", "json"), &list)
	jobs := list.GetJobs()
	if len(jobs) != 4 {
		t.Fatalf("demo-credit-risk has %d jobs, want 4", len(jobs))
	}
	for i, j := range jobs {
		if j.GetState() != schedulerv1.JobState_JOB_STATE_SUCCEEDED || j.GetModelVersion() != int64(4-i) || j.GetTrigger() != "manual" || j.GetAttempt() != 1 {
			t.Fatalf("job %d = %v", i, j)
		}
	}
	matches(run("get", "jobs", "--pipeline", "demo-credit-risk"),
		`(?m)^`+jobs[0].GetId()+`\s+demo-credit-risk@4\s+succeeded\s+manual\s+demo-credit-applications@1\s+1/3\s+dev-worker-1\s+4\s+\S+ \S+\s+\S+$`)
	matches(run("get", "jobs", "--limit", "1"), `(?m)^\(only the newest 1: --limit 0 lists all\)$`)
	matches(run("get", "jobs", "--state", "failed"), `^No jobs.\n$`)

	// The production version's job: everything its lineage points at.
	prodJob := production.GetLineage().GetTrainingJob()
	out := run("get", "job", prodJob)
	for _, want := range []string{
		`State:\s+succeeded`, `Trigger:\s+manual`, `Attempt:\s+1 of 3`, `Params:\s+\{"l2":0.1,"maxIter":100\}`,
		`Dataset:\s+demo-credit-applications@1`, `Dataset sha256:\s+` + production.GetLineage().GetDatasetDigest(),
		`Worker:\s+dev-worker-1 \([0-9a-f-]{36}\)`, `Model version:\s+demo-credit-risk@4`, `Metrics:\s+\S+=.*`,
		`Started:\s+\S+ \S+`, `Ended:\s+\S+ \S+`, `Duration:\s+\S+`, `Logs:\s+gyre logs ` + prodJob,
	} {
		matches(out, `(?m)^`+want+`$`)
	}

	// Its log as text, and as one JSON object a line, in order; -f on an
	// ended job prints the same and says how it ended, on stderr.
	text := run("logs", prodJob)
	var seqs []int64
	var texts strings.Builder
	for line := range strings.Lines(run("logs", prodJob, "-o", "json")) {
		var l schedulerv1.LogLine
		decode(line, &l)
		seqs = append(seqs, l.GetSeq())
		texts.WriteString(l.GetText() + "\n")
	}
	if len(seqs) == 0 || !slices.IsSorted(seqs) || texts.String() != text {
		t.Fatalf("log as json (seqs %v):\n%s\nas text:\n%s", seqs, texts.String(), text)
	}
	if out, errOut, code := gyre("", "logs", "-f", prodJob); code != 0 || out != text || !strings.Contains(errOut, "job "+prodJob+" succeeded in ") {
		t.Fatalf("logs -f: exit %d\n%s%s", code, out, errOut)
	}
	matches(run("get", "workers"), `(?m)^dev-worker-1\s+[\d.]+\s+[\d.]+ [KMG]iB\s+\S.*\s+(\S+ ago|just now)\s+[0-9a-f-]{36}$`)

	// train --wait on a chosen dataset version, with a code ref and priority.
	apply("apiVersion: gyre.dev/v1\nkind: Pipeline\nmetadata: {name: demo-train}\nspec:\n  dataset: demo-credit-applications\n" +
		"  training: {target: default, trainer: builtin/logistic, params: {maxIter: 5}}\n  retraining: {on: []}\n")
	out = run("train", "demo-train", "--dataset", "demo-credit-applications@2", "--code-ref", "git:abc123", "--priority", "7", "--wait")
	matches(out, `^job \S+ (queued|running): demo-train@1 \(builtin/logistic\) on demo-credit-applications@2\n`)
	matches(out, `(?m)^job \S+ succeeded in \S+ on worker dev-worker-1 \(attempt 1 of 3\)\nregistered demo-train version 1: \S+=`)
	var trained schedulerv1.Job
	decode(run("get", "job", strings.Fields(out)[1], "-o", "json"), &trained)
	if trained.GetCodeRef() != "git:abc123" || trained.GetPriority() != 7 || trained.GetDatasetVersion() != 2 || trained.GetModelVersion() != 1 {
		t.Fatalf("trained job = %v", &trained)
	}
	// With -o json the final job is all of stdout; the story goes to stderr.
	out, errOut, code := gyre("", "train", "demo-train", "--wait", "-o", "json")
	var again schedulerv1.Job
	decode(out, &again)
	if code != 0 || again.GetModelVersion() != 2 || again.GetDatasetVersion() != 2 || !strings.Contains(errOut, "registered demo-train version 2") {
		t.Fatalf("train --wait -o json: exit %d, job %v\n%s", code, &again, errOut)
	}
	if _, errOut, code := gyre("", "train", "demo-train", "--dataset", "other@1"); code != 1 ||
		errOut != "error: pipeline demo-train trains on dataset \"demo-credit-applications\", not \"other\"\n" {
		t.Fatalf("train on another dataset: exit %d: %s", code, errOut)
	}

	// A trainer that fails: its stderr is in the log, the reason ends the story, exit 1.
	apply("apiVersion: gyre.dev/v1\nkind: Pipeline\nmetadata: {name: demo-fail}\nspec:\n  dataset: demo-credit-applications\n" +
		"  training:\n    target: default\n    trainer: command\n    command: [sh, -c, \"echo loading; echo 'out of memory' >&2; exit 3\"]\n" +
		"    maxAttempts: 1\n  retraining: {on: []}\n")
	out, errOut, code = gyre("", "train", "demo-fail", "--wait")
	if code != 1 || !strings.Contains(out, "out of memory\n") {
		t.Fatalf("failing job: exit %d\n%s%s", code, out, errOut)
	}
	matches(out, `(?m)^job \S+ failed after 1 of 1 attempts: \S.*$`)
	matches(run("get", "jobs", "--state", "failed"), `(?m)^\S+\s+demo-fail@1\s+failed\s+manual\s`)

	// A job no worker can take waits in the queue; cancelling it ends a --wait with exit 1.
	apply("apiVersion: gyre.dev/v1\nkind: Pipeline\nmetadata: {name: demo-stuck}\nspec:\n  dataset: demo-credit-applications\n" +
		"  training: {target: default, trainer: builtin/logistic, resources: {cpu: 1000}}\n  retraining: {on: []}\n")
	type result struct {
		out, errOut string
		code        int
	}
	waited := make(chan result, 1)
	go func() {
		out, errOut, code := gyre("", "train", "demo-stuck", "--wait")
		waited <- result{out, errOut, code}
	}()
	var stuck string
	for deadline := time.Now().Add(30 * time.Second); stuck == ""; time.Sleep(50 * time.Millisecond) {
		var queued schedulerv1.ListJobsResponse
		decode(run("get", "jobs", "--pipeline", "demo-stuck", "--state", "queued", "-o", "json"), &queued)
		if len(queued.GetJobs()) > 0 {
			stuck = queued.GetJobs()[0].GetId()
		} else if time.Now().After(deadline) {
			t.Fatal("the job of demo-stuck never showed as queued")
		}
	}
	matches(run("cancel", stuck, "--reason", "wrong data"), `^job `+stuck+` cancelled: wrong data\n$`)
	select {
	case r := <-waited:
		if r.code != 1 || !strings.Contains(r.out, "job "+stuck+" cancelled: wrong data\n") {
			t.Fatalf("train --wait of a cancelled job: exit %d\n%s%s", r.code, r.out, r.errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("train --wait did not end when its job was cancelled")
	}
	if _, errOut, code := gyre("", "cancel", stuck); code != 1 || !strings.Contains(errOut, "already ended (cancelled)") {
		t.Fatalf("second cancel: exit %d: %s", code, errOut)
	}
	// The log stream's own error form (grpc-gateway's, not Gyre's) prints like any other.
	if _, errOut, code := gyre("", "logs", "-f", "nope"); code != 1 || errOut != "error: job \"nope\" not found\n" {
		t.Fatalf("logs of no job: exit %d: %q", code, errOut)
	}
}

func TestPrintLogLineMarksEachNewAttempt(t *testing.T) {
	var buf bytes.Buffer
	attempt := int32(0)
	for _, l := range []*schedulerv1.LogLine{
		{Seq: 1, Attempt: 1, Text: "loading"}, {Seq: 2, Attempt: 1, Text: "killed"},
		{Seq: 3, Attempt: 2, Text: "loading"}, {Seq: 4, Attempt: 2, Text: "done"},
	} {
		printLogLine(&buf, l, &attempt, false)
	}
	if want := "loading\nkilled\n--- attempt 2 ---\nloading\ndone\n"; buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
	// Following from the middle of a retried job: say which attempt the first line is of.
	buf.Reset()
	attempt = 0
	printLogLine(&buf, &schedulerv1.LogLine{Seq: 3, Attempt: 2, Text: "loading"}, &attempt, false)
	if buf.String() != "--- attempt 2 ---\nloading\n" {
		t.Fatalf("got %q", buf.String())
	}
}

func TestParseJobState(t *testing.T) {
	for in, want := range map[string]schedulerv1.JobState{
		"":                    schedulerv1.JobState_JOB_STATE_UNSPECIFIED,
		"queued":              schedulerv1.JobState_JOB_STATE_QUEUED,
		"Failed":              schedulerv1.JobState_JOB_STATE_FAILED,
		"JOB_STATE_CANCELLED": schedulerv1.JobState_JOB_STATE_CANCELLED,
	} {
		if got, err := parseJobState(in); err != nil || got != want {
			t.Errorf("parseJobState(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseJobState("done"); err == nil || !strings.Contains(err.Error(), "queued, running, succeeded, failed, cancelled") {
		t.Fatalf("err = %v", err)
	}
}

func TestDescribeGPUsCountsEachModel(t *testing.T) {
	got := describeGPUs([]*schedulerv1.GPU{
		{Index: 0, Model: "H100", MemoryMib: 81559}, {Index: 1, Model: "H100", MemoryMib: 81559}, {Index: 2, Model: "L4", MemoryMib: 23034},
	})
	if want := "2 × H100 (79.6 GiB), 1 × L4 (22.5 GiB)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// The retraining spec differs from demo_pipeline.yaml in its params alone:
// YAML 1.1 would turn retraining's key "on" into true on the way.
func TestWithTrainingParamsChangesOnlyTheParams(t *testing.T) {
	manifest, err := withTrainingParams(demoPipeline, demoRetrainParams)
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	if err := yaml.Unmarshal([]byte(demoPipeline), &before); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(manifest), &after); err != nil {
		t.Fatal(err)
	}
	training := func(doc map[string]any) map[string]any {
		return doc["spec"].(map[string]any)["training"].(map[string]any)
	}
	if got := fmt.Sprint(training(after)["params"]); got != "map[l2:0.1 maxIter:100]" {
		t.Fatalf("params = %v", got)
	}
	training(before)["params"], training(after)["params"] = nil, nil
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the rest changed:\n%v\n%v", before, after)
	}
}
