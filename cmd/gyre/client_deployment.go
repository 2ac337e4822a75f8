package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/client"
	deployerv1 "github.com/gyreml/gyre/pkg/pb/gyre/deployer/v1"
)

// deploymentPoll is how often --wait asks for a rollout's state.
const deploymentPoll = 500 * time.Millisecond

// addDeploymentCommands adds deploy, approve, rollback, and the deployment
// subcommands of get and describe.
func addDeploymentCommands(root *cobra.Command, o *clientOptions) {
	root.AddCommand(newDeployCmd(o), newApproveCmd(o), newRollbackCmd(o))
	for _, c := range root.Commands() {
		switch c.Name() {
		case "get":
			c.AddCommand(newGetDeploymentsCmd(o), newGetServingCmd(o))
		case "describe":
			c.AddCommand(&cobra.Command{
				Use:   "deployment ID",
				Short: "Show a rollout in full: state, steps, weights, smoke test, analyses, who approved",
				Args:  cobra.ExactArgs(1),
				RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
					d, err := c.GetDeployment(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					return o.emit(cmd.OutOrStdout(), d, func(w io.Writer) error {
						printDeployment(w, d)
						return nil
					})
				}),
			})
		}
	}
}

func newDeployCmd(o *clientOptions) *cobra.Command {
	var (
		env                   string
		promote, wait, dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "deploy MODEL@VERSION --env staging|production",
		Short: "Roll a model version out to an environment by hand",
		Long: "Deploy starts a rollout of the version to the environment, by its pipeline's strategy in production\n" +
			"(direct, canary, shadow; approval when the pipeline asks for it) and with a smoke test in staging.\n" +
			"Versions that pass their evaluation are deployed on their own; this is for doing it by hand.\n" +
			"VERSION may also be an alias. With --wait the command follows the rollout to its end.",
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			model, ref, ok := strings.Cut(args[0], "@")
			if !ok || model == "" || ref == "" {
				return fmt.Errorf("want MODEL@VERSION, got %q", args[0])
			}
			if dryRun && wait {
				return fmt.Errorf("--dry-run starts nothing to --wait for")
			}
			version, err := resolveVersion(cmd, c, model, ref)
			if err != nil {
				return err
			}
			d, err := c.Deploy(cmd.Context(), &deployerv1.DeployRequest{Model: model, Version: version, Environment: env, Promote: promote, DryRun: dryRun})
			if err != nil {
				return err
			}
			if dryRun {
				return o.emit(cmd.OutOrStdout(), d, func(w io.Writer) error {
					fmt.Fprintf(w, "dry run: the rollout of %s@%d to %s would start so; nothing was recorded\n\n", d.GetModel(), d.GetVersion(), d.GetEnvironment())
					tw := newTable(w)
					printDeployment(tw, d)
					if err := tw.Flush(); err != nil {
						return err
					}
					if d.GetManifests() != "" {
						fmt.Fprintf(w, "\n# What the %s target would apply:\n%s", d.GetTarget(), d.GetManifests())
					}
					return nil
				})
			}
			return followDeployment(cmd, o, c, d, wait)
		}),
	}
	cmd.Flags().StringVar(&env, "env", "staging", "environment: staging or production")
	cmd.Flags().BoolVar(&promote, "promote", false, "go on to production when staging succeeds")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the rollout to its end (exit status 1 unless it succeeded)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check and show the rollout (and a Kubernetes target's manifests) without starting it")
	return cmd
}

func newApproveCmd(o *clientOptions) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "approve DEPLOYMENT",
		Short: "Approve a rollout that waits for approval (the approver goes in the audit log)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			d, err := c.ApproveDeployment(cmd.Context(), args[0], comment)
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), d, func(w io.Writer) error {
				fmt.Fprintf(w, "deployment %s of %s@%d to %s approved by %s\n", d.GetId(), d.GetModel(), d.GetVersion(), d.GetEnvironment(), d.GetApprovedBy())
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why, for the audit log")
	return cmd
}

func newRollbackCmd(o *clientOptions) *cobra.Command {
	var env, reason string
	cmd := &cobra.Command{
		Use:   "rollback MODEL --env production",
		Short: "Return an environment to the version it served before, at once",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			d, err := c.Rollback(cmd.Context(), args[0], env, reason)
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), d, func(w io.Writer) error {
				if d.GetStrategy() == "rollback" {
					fmt.Fprintf(w, "%s in %s is back on version %d (was %d)\n", d.GetModel(), d.GetEnvironment(), d.GetVersion(), d.GetPreviousVersion())
				} else {
					fmt.Fprintf(w, "rollout %s of %s@%d stopped; %s serves version %d\n", d.GetId(), d.GetModel(), d.GetVersion(),
						d.GetEnvironment(), d.GetPreviousVersion())
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&env, "env", "production", "environment: staging or production")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

func newGetDeploymentsCmd(o *clientOptions) *cobra.Command {
	var (
		model, env string
		active     bool
	)
	cmd := &cobra.Command{
		Use:   "deployments",
		Short: "List rollouts, newest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			ds, err := c.AllDeployments(cmd.Context(), &deployerv1.ListDeploymentsRequest{Model: model, Environment: env, ActiveOnly: active, PageSize: 500})
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), &deployerv1.ListDeploymentsResponse{Deployments: ds}, func(w io.Writer) error {
				row(w, "ID", "MODEL", "VERSION", "ENV", "STRATEGY", "STATE", "PHASE", "WEIGHT", "PREVIOUS", "CREATED", "REASON")
				for _, d := range ds {
					row(w, d.GetId(), d.GetModel(), d.GetVersion(), d.GetEnvironment(), d.GetStrategy(), deploymentState(d), d.GetPhase(),
						fmt.Sprintf("%d%%", d.GetWeight()), d.GetPreviousVersion(), when(d.GetCreateTime()), orDash(d.GetReason()))
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&model, "model", "", "only this model's rollouts")
	cmd.Flags().StringVar(&env, "env", "", "only this environment's rollouts")
	cmd.Flags().BoolVar(&active, "active", false, "only rollouts still going on")
	return cmd
}

func newGetServingCmd(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "serving [MODEL]",
		Short: "What each environment serves: stable, canary with its weight, shadow",
		Args:  cobra.MaximumNArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			model := ""
			if len(args) == 1 {
				model = args[0]
			}
			resp, err := c.ListServing(cmd.Context(), model)
			if err != nil {
				return err
			}
			return o.emit(cmd.OutOrStdout(), resp, func(w io.Writer) error {
				row(w, "MODEL", "ENV", "STABLE", "CANARY", "WEIGHT", "SHADOW", "UPDATED")
				for _, s := range resp.GetServing() {
					row(w, s.GetModel(), s.GetEnvironment(), s.GetStableVersion(), versionOrDash(s.GetCanaryVersion()),
						fmt.Sprintf("%d%%", s.GetCanaryWeight()), versionOrDash(s.GetShadowVersion()), when(s.GetUpdateTime()))
				}
				return nil
			})
		}),
	}
}

func deploymentState(d *deployerv1.Deployment) string {
	return strings.ToLower(strings.TrimPrefix(d.GetState().String(), "DEPLOYMENT_STATE_"))
}

func deploymentEnded(d *deployerv1.Deployment) bool {
	switch d.GetState() {
	case deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED, deployerv1.DeploymentState_DEPLOYMENT_STATE_ROLLED_BACK,
		deployerv1.DeploymentState_DEPLOYMENT_STATE_FAILED:
		return true
	}
	return false
}

// followDeployment prints a rollout, or with wait follows it to its end.
func followDeployment(cmd *cobra.Command, o *clientOptions, c *client.Client, d *deployerv1.Deployment, wait bool) error {
	story := cmd.OutOrStdout()
	if o.output != "table" {
		story = cmd.ErrOrStderr()
	}
	fmt.Fprintf(story, "deployment %s of %s@%d to %s: %s\n", d.GetId(), d.GetModel(), d.GetVersion(), d.GetEnvironment(), deploymentProgress(d))
	if !wait {
		if o.output != "table" {
			return o.emit(cmd.OutOrStdout(), d, nil)
		}
		fmt.Fprintf(story, "Follow it: gyre describe deployment %s\n", d.GetId())
		return nil
	}
	ended, err := waitDeployment(cmd.Context(), c, d, func(d *deployerv1.Deployment) {
		fmt.Fprintf(story, "deployment %s: %s\n", d.GetId(), deploymentProgress(d))
	})
	if err != nil {
		return err
	}
	if o.output == "table" {
		tw := newTable(story)
		printDeployment(tw, ended)
		if err := tw.Flush(); err != nil {
			return err
		}
	} else if err := o.emit(cmd.OutOrStdout(), ended, nil); err != nil {
		return err
	}
	if ended.GetState() != deployerv1.DeploymentState_DEPLOYMENT_STATE_SUCCEEDED {
		return exitError{code: 1}
	}
	return nil
}

// waitDeployment polls until the rollout ends, calling changed as it moves.
func waitDeployment(ctx context.Context, c *client.Client, d *deployerv1.Deployment, changed func(*deployerv1.Deployment)) (*deployerv1.Deployment, error) {
	tick := time.NewTicker(deploymentPoll)
	defer tick.Stop()
	for !deploymentEnded(d) {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped waiting for deployment %s, which goes on: %w", d.GetId(), ctx.Err())
		case <-tick.C:
		}
		next, err := c.GetDeployment(ctx, d.GetId())
		if err != nil {
			return nil, err
		}
		if deploymentProgress(next) != deploymentProgress(d) && !deploymentEnded(next) {
			changed(next)
		}
		d = next
	}
	return d, nil
}

func deploymentProgress(d *deployerv1.Deployment) string {
	s := deploymentState(d)
	if d.GetPhase() != "" && d.GetPhase() != "done" {
		s += " (" + strings.ReplaceAll(d.GetPhase(), "_", " ")
		if d.GetPhase() == "canary" {
			s += fmt.Sprintf(" at %d%%", d.GetWeight())
		}
		s += ")"
	}
	return s
}

func printDeployment(w io.Writer, d *deployerv1.Deployment) {
	field(w, "Deployment", d.GetId())
	field(w, "Model", fmt.Sprintf("%s@%d", d.GetModel(), d.GetVersion()))
	field(w, "Environment", d.GetEnvironment())
	field(w, "Strategy", d.GetStrategy()+" on "+d.GetTarget())
	field(w, "State", deploymentProgress(d))
	if d.GetReason() != "" {
		field(w, "Reason", d.GetReason())
	}
	if len(d.GetSteps()) > 0 {
		steps := make([]string, len(d.GetSteps()))
		for i, s := range d.GetSteps() {
			steps[i] = fmt.Sprintf("%d%%", s)
			if int32(i) == d.GetStep() && !deploymentEnded(d) {
				steps[i] = "[" + steps[i] + "]"
			}
		}
		field(w, "Steps", strings.Join(steps, " -> "))
	}
	field(w, "Weight", fmt.Sprintf("%d%%", d.GetWeight()))
	field(w, "Previous", versionOrDash(d.GetPreviousVersion()))
	field(w, "Pipeline", orDash(d.GetPipeline()))
	if d.GetEvaluation() != "" {
		field(w, "Evaluation", d.GetEvaluation())
	}
	approval := d.GetApproval()
	if d.GetApprovedBy() != "" {
		approval += fmt.Sprintf(", approved by %s at %s", d.GetApprovedBy(), when(d.GetApproveTime()))
	}
	field(w, "Approval", approval)
	field(w, "Requested by", d.GetRequestedBy())
	field(w, "Created", when(d.GetCreateTime()))
	if d.GetEndTime() != nil {
		field(w, "Ended", when(d.GetEndTime()))
	}
	if st := d.GetSmokeTest(); st != nil {
		verdict := "passed"
		if !st.GetPassed() {
			verdict = "FAILED: " + strings.Join(st.GetReasons(), "; ")
		}
		field(w, "Smoke test", fmt.Sprintf("%s (%d requests, %d errors, p99 %.2f ms, %d mismatches)", verdict, st.GetRequests(),
			st.GetErrors(), st.GetLatencyP99Ms(), st.GetMismatches()))
	}
	if len(d.GetAnalyses()) > 0 {
		fmt.Fprintln(w)
		row(w, "STEP", "WEIGHT", "TIME", "RESULT", "CANARY", "STABLE", "TRIGGERED")
		for _, a := range d.GetAnalyses() {
			result := "pass"
			if !a.GetPassed() {
				result = "rollback"
			}
			row(w, a.GetStep(), fmt.Sprintf("%d%%", a.GetWeight()), when(a.GetTime()), result, pairs(a.GetCanary(), num),
				pairs(a.GetStable(), num), orDash(strings.Join(a.GetTriggered(), "; ")))
		}
	}
}
