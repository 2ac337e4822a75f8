package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	monitorv1 "github.com/gyreml/gyre/pkg/pb/gyre/monitor/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// closeLoop injects drift into production traffic and follows the loop the
// platform runs by itself: monitor alert -> retraining job -> new version ->
// evaluation -> staging -> canary -> production.
func (d *demo) closeLoop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.loopTimeout)
	defer cancel()
	model := d.pipeline.GetModel()
	began := time.Now()
	d.say("sending production traffic whose applicants are 40 years older and earn 3x more than the training data...")
	alert, err := d.driftUntilAlert(ctx, model, began)
	if err != nil {
		return err
	}
	d.alertAt = alert.GetFireTime().AsTime()
	d.say("monitor alert %s FIRED after %s: %s = %.3f > threshold %.3f (window of %s@%d in %s)", short(alert.GetId()),
		formatDuration(time.Since(began)), alert.GetRule(), alert.GetValue(), alert.GetThreshold(), model, alert.GetModelVersion(), alert.GetEnvironment())
	d.say("from here nothing is done by hand: the scheduler retrains on the alert, the evaluator judges, the deployer releases")

	var job *schedulerv1.Job
	if err := d.poll(ctx, "the retraining job", func() (bool, error) {
		jobs, err := d.c.ListJobs(ctx, &schedulerv1.ListJobsRequest{Pipeline: d.pipeline.GetName(), PageSize: 5})
		if err != nil {
			return false, err
		}
		for _, j := range jobs.GetJobs() {
			if j.GetTrigger() == "drift" && j.GetCreateTime().AsTime().After(began) {
				job = j
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	d.say("training job %s queued by the alert (trigger %s) %s after it", short(job.GetId()), job.GetTrigger(),
		formatDuration(job.GetCreateTime().AsTime().Sub(d.alertAt)))
	if wait := job.GetNotBefore().AsTime().Sub(job.GetCreateTime().AsTime()); wait > time.Second {
		d.say("it waits %s for the pipeline's retraining cooldown (the least time between two retrainings)", formatDuration(wait))
	}
	var v *registryv1.ModelVersion
	if err := d.poll(ctx, "the retrained version", func() (bool, error) {
		j, err := d.c.GetJob(ctx, job.GetId())
		if err != nil || j.GetModelVersion() == 0 {
			return false, err
		}
		v, err = d.c.GetModelVersion(ctx, model, j.GetModelVersion())
		return err == nil, err
	}); err != nil {
		return err
	}
	d.say("registered %s@%d %s after the alert", model, v.GetVersion(), formatDuration(v.GetCreateTime().AsTime().Sub(d.alertAt)))
	e, err := d.evaluation(ctx, v)
	if err != nil {
		return err
	}
	d.loopEval = e
	if err := d.release(ctx, v); err != nil {
		return err
	}
	d.third = v
	prod := d.releases[len(d.releases)-1]
	d.loopTime = prod.GetEndTime().AsTime().Sub(d.alertAt)
	d.say("alert -> %s@%d serving production traffic: %s", model, v.GetVersion(), formatDuration(d.loopTime))
	return nil
}

// driftUntilAlert sends drifted production requests until a drift alert of
// the model fires after since.
func (d *demo) driftUntilAlert(ctx context.Context, model string, since time.Time) (*monitorv1.Alert, error) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no drift alert within %s (gyre get alerts --model %s; gyre drift %s): %w", d.loopTimeout, model, model, ctx.Err())
		case <-tick.C:
		}
		body, err := d.inferBody(ctx, model, i)
		if err != nil {
			return nil, err
		}
		if _, _, err := d.infer(ctx, model, drifted(body)); err != nil {
			return nil, err
		}
		if i%20 != 0 {
			continue
		}
		alerts, err := d.c.ListAlerts(ctx, &monitorv1.ListAlertsRequest{Model: model})
		if err != nil {
			return nil, err
		}
		for _, a := range alerts.GetAlerts() {
			if a.GetKind() == "drift" && a.GetFireTime().AsTime().After(since) {
				return a, nil
			}
		}
	}
}

// drifted shifts a request's age by 40 years and triples its income.
func drifted(body []byte) []byte {
	var req struct {
		Inputs []map[string]any `json:"inputs"`
	}
	if json.Unmarshal(body, &req) != nil {
		return body
	}
	for _, in := range req.Inputs {
		data, _ := in["data"].([]any)
		for i, x := range data {
			if f, ok := x.(float64); ok {
				switch in["name"] {
				case "age":
					data[i] = f + 40
				case "income":
					data[i] = f * 3
				}
			}
		}
	}
	out, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return bytes.TrimSpace(out)
}

// poll calls check every half second until it is done.
func (d *demo) poll(ctx context.Context, what string, check func() (bool, error)) error {
	tick := time.NewTicker(deploymentPoll)
	defer tick.Stop()
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}
