package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// The demo's rollouts: the deployer moves each passed version through
// staging (smoke test) and into production (canary) on its own; the demo
// follows, and sends production traffic while a canary runs.

// waitRollout follows the newest rollout of v to env until it ends, printing
// each move; with traffic, production answers requests meanwhile.
func (d *demo) waitRollout(ctx context.Context, v *registryv1.ModelVersion, env string, traffic bool) (*deployerv1.Deployment, error) {
	ctx, cancel := context.WithTimeout(ctx, d.rolloutTimeout)
	defer cancel()
	var answered map[string]int64
	if traffic {
		stop := d.sendTraffic(ctx, &answered)
		defer stop()
	}
	tick := time.NewTicker(deploymentPoll)
	defer tick.Stop()
	last := ""
	for {
		list, err := d.c.ListDeployments(ctx, &deployerv1.ListDeploymentsRequest{Model: v.GetModel(), Environment: env, PageSize: 20})
		if err != nil {
			return nil, err
		}
		for _, dep := range list.GetDeployments() {
			if dep.GetVersion() != v.GetVersion() || dep.GetStrategy() == "rollback" {
				continue
			}
			if p := deploymentProgress(dep); p != last {
				d.say("deployment %s of %s@%d to %s: %s", short(dep.GetId()), dep.GetModel(), dep.GetVersion(), env, p)
				last = p
			}
			if deploymentEnded(dep) {
				return dep, nil
			}
			if dep.GetState() == deployerv1.DeploymentState_DEPLOYMENT_STATE_AWAITING_APPROVAL {
				return dep, fmt.Errorf("deployment %s waits for approval: gyre approve %s", dep.GetId(), dep.GetId())
			}
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the rollout of %s@%d to %s did not end within %s (gyre get deployments --model %s): %w",
				v.GetModel(), v.GetVersion(), env, d.rolloutTimeout, v.GetModel(), ctx.Err())
		case <-tick.C:
		}
	}
}

// release waits for v's staging and production rollouts and prints them.
func (d *demo) release(ctx context.Context, v *registryv1.ModelVersion) error {
	d.say("the deployer takes every passed version to staging and smoke-tests it there with its holdout rows...")
	st, err := d.waitRollout(ctx, v, "staging", false)
	if err != nil {
		return err
	}
	if s := st.GetSmokeTest(); s != nil {
		d.say("smoke test: %d requests to the staging endpoint, %d errors, p99 %.2f ms, %d answers differing from the evaluator's",
			s.GetRequests(), s.GetErrors(), s.GetLatencyP99Ms(), s.GetMismatches())
	}
	if st.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED {
		return fmt.Errorf("staging rollout %s %s: %s", st.GetId(), deploymentState(st), st.GetReason())
	}
	d.say("then to production, by the pipeline's strategy (canary 10%% -> 50%% -> 100%%, rollback on errors or latency)...")
	prod, err := d.waitRollout(ctx, v, "production", true)
	if err != nil {
		return err
	}
	if prod.GetPreviousVersion() == 0 {
		d.say("production served no version before: version %d took all traffic directly (no stable version to compare a canary with)", v.GetVersion())
	}
	for _, a := range prod.GetAnalyses() {
		d.say("canary analysis at %d%%: %s (canary %.0f requests, error rate %.3f, p99 %.2f ms; stable %.0f requests, p99 %.2f ms)",
			a.GetWeight(), map[bool]string{true: "pass", false: "ROLLBACK"}[a.GetPassed()], a.GetCanary()["requests"],
			a.GetCanary()["error_rate"], a.GetCanary()["latency.p99_ms"], a.GetStable()["requests"], a.GetStable()["latency.p99_ms"])
	}
	if prod.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED {
		return fmt.Errorf("production rollout %s %s: %s", prod.GetId(), deploymentState(prod), prod.GetReason())
	}
	d.releases = append(d.releases, prod)
	d.say("production now serves %s@%d; aliases staging and production moved with the traffic", v.GetModel(), v.GetVersion())
	return nil
}

// demoRow is one row of the demo data as an OIP v2 request body, with a
// tensor per model input (read from the model's metadata).
func (d *demo) inferBody(ctx context.Context, model string, row int) ([]byte, error) {
	resp, err := d.httpGet(ctx, "/v2/models/"+model)
	if err != nil {
		return nil, err
	}
	var meta struct {
		Inputs []struct {
			Name     string `json:"name"`
			Datatype string `json:"datatype"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(resp, &meta); err != nil {
		return nil, fmt.Errorf("model metadata: %w", err)
	}
	records, err := csv.NewReader(bytes.NewReader(demoCleanCSV)).ReadAll()
	if err != nil {
		return nil, err
	}
	// Rows spread over the file, so that any stretch of traffic looks like the data.
	header, rec := records[0], records[1+(row*7919)%(len(records)-1)]
	type tensor struct {
		Name     string `json:"name"`
		Shape    []int  `json:"shape"`
		Datatype string `json:"datatype"`
		Data     [1]any `json:"data"`
	}
	var body struct {
		Inputs []tensor `json:"inputs"`
	}
	for _, in := range meta.Inputs {
		t := tensor{Name: in.Name, Shape: []int{1}, Datatype: in.Datatype}
		for j, h := range header {
			if h != in.Name {
				continue
			}
			if in.Datatype == "BYTES" {
				t.Data[0] = rec[j]
			} else if f, err := strconv.ParseFloat(rec[j], 64); err == nil {
				t.Data[0] = f
			}
		}
		body.Inputs = append(body.Inputs, t)
	}
	return json.Marshal(body)
}

func (d *demo) httpGet(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.server+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, err
}

// infer posts body to production and returns the answering version and the body.
func (d *demo) infer(ctx context.Context, model string, body []byte) (string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.server+"/v2/models/"+model+"/infer", bytes.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", b, fmt.Errorf("infer: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var out struct {
		ModelVersion string `json:"model_version"`
	}
	err = json.Unmarshal(b, &out)
	return out.ModelVersion, b, err
}

// sendTraffic sends production requests (about 50/s) until stopped, and
// counts the answers by version.
func (d *demo) sendTraffic(ctx context.Context, answered *map[string]int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	model := d.pipeline.GetModel()
	counts := map[string]*atomic.Int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			body, err := d.inferBody(ctx, model, i)
			if err != nil {
				continue // production serves nothing yet
			}
			v, _, err := d.infer(ctx, model, body)
			if err != nil {
				continue
			}
			mu.Lock()
			if counts[v] == nil {
				counts[v] = new(atomic.Int64)
			}
			counts[v].Add(1)
			mu.Unlock()
		}
	})
	return func() {
		cancel()
		wg.Wait()
		if len(counts) > 1 {
			var parts []string
			for v, n := range counts {
				parts = append(parts, fmt.Sprintf("version %s answered %d", v, n.Load()))
			}
			d.say("production traffic sent by the demo meanwhile: %s", strings.Join(parts, ", "))
		}
		m := map[string]int64{}
		for v, n := range counts {
			m[v] = n.Load()
		}
		*answered = m
	}
}

// serve shows production answering, and the curl line that does it.
func (d *demo) serve(ctx context.Context) error {
	model := d.pipeline.GetModel()
	body, err := d.inferBody(ctx, model, 0)
	if err != nil {
		return err
	}
	v, answer, err := d.infer(ctx, model, body)
	if err != nil {
		return err
	}
	d.say("POST %s/v2/models/%s/infer (Open Inference Protocol, KServe v2) answered by version %s:", d.server, model, v)
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, answer, "   ", "  ")
	d.say("%s", pretty.String())
	d.curl = fmt.Sprintf("curl -s -X POST %s/v2/models/%s/infer -H 'Content-Type: application/json' -d '%s'", d.server, model, body)
	d.say("try it:")
	d.say("%s", d.curl)
	return nil
}
