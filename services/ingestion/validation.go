package ingestion

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/yaml"

	"github.com/gyreml/gyre/pkg/apierr"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/pipeline"
)

// rules are what an upload is checked against, and where they came from.
type rules struct {
	validation pipeline.Validation
	// pipeline names the pipeline whose spec gave the rules ("" otherwise).
	pipeline string
	source   string
}

// digest identifies the rules, so a rejection is only replayed for the same
// bytes under the same rules.
func (r rules) digest() string {
	b, _ := json.Marshal(r.validation)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// resolveRules picks the validation for an upload: the named pipeline's, or
// the section sent with the upload, or the one pipeline that trains on this
// dataset, or the defaults (schema inferred then enforced; no rules).
func (s *Service) resolveRules(ctx context.Context, dataset, pipelineName, inline string) (rules, error) {
	switch {
	case pipelineName != "" && inline != "":
		return rules{}, apierr.InvalidField("validation", "give either a pipeline or a validation section, not both")
	case inline != "":
		v, err := parseInlineValidation(dataset, inline)
		if err != nil {
			return rules{}, err
		}
		return rules{validation: v, source: "sent with the upload"}, nil
	case pipelineName != "":
		p, err := s.registry.GetPipeline(ctx, &registryv1.GetPipelineRequest{Pipeline: pipelineName})
		if status.Code(err) == codes.NotFound {
			return rules{}, apierr.InvalidField("pipeline", "pipeline %q not found", pipelineName)
		}
		if err != nil {
			return rules{}, fmt.Errorf("get pipeline %s: %w", pipelineName, err)
		}
		spec, err := specOf(p)
		if err != nil {
			return rules{}, err
		}
		if spec.Spec.Dataset != dataset {
			return rules{}, apierr.InvalidField("pipeline", "pipeline %q trains on dataset %q, not %q", pipelineName, spec.Spec.Dataset, dataset)
		}
		return rules{validation: spec.Spec.Validation, pipeline: pipelineName, source: fmt.Sprintf("pipeline %s version %d", p.GetName(), p.GetVersion())}, nil
	}
	var matches []*registryv1.Pipeline
	token := ""
	for {
		resp, err := s.registry.ListPipelines(ctx, &registryv1.ListPipelinesRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return rules{}, fmt.Errorf("list pipelines: %w", err)
		}
		for _, p := range resp.GetPipelines() {
			if p.GetDataset() == dataset {
				matches = append(matches, p)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	switch len(matches) {
	case 0:
		var v pipeline.Validation
		p := pipeline.Pipeline{Spec: pipeline.Spec{Validation: v}}
		p.SetDefaults()
		return rules{validation: p.Spec.Validation, source: "defaults (no pipeline trains on this dataset)"}, nil
	case 1:
		spec, err := specOf(matches[0])
		if err != nil {
			return rules{}, err
		}
		return rules{validation: spec.Spec.Validation, pipeline: matches[0].GetName(),
			source: fmt.Sprintf("pipeline %s version %d", matches[0].GetName(), matches[0].GetVersion())}, nil
	default:
		var names []string
		for _, m := range matches {
			names = append(names, m.GetName())
		}
		return rules{}, apierr.InvalidField("pipeline", "pipelines %s all train on dataset %q: name the one whose validation applies", strings.Join(names, ", "), dataset)
	}
}

// specOf parses a stored pipeline document back into its typed form.
func specOf(p *registryv1.Pipeline) (*pipeline.Pipeline, error) {
	spec, err := pipeline.FromStruct(p.GetSpec())
	if err != nil {
		return nil, fmt.Errorf("stored pipeline %s no longer parses: %w", p.GetName(), err)
	}
	return spec, nil
}

// parseInlineValidation validates a spec.validation section on its own, with
// the same checks (and error paths, under "validation") as in a pipeline.
func parseInlineValidation(dataset, text string) (pipeline.Validation, error) {
	var section any
	if err := yaml.Unmarshal([]byte(text), &section); err != nil {
		return pipeline.Validation{}, apierr.InvalidField("validation", "not YAML or JSON: %v", err)
	}
	doc, err := json.Marshal(map[string]any{
		"apiVersion": "gyre.dev/v1", "kind": "Pipeline",
		"metadata": map[string]any{"name": "upload"},
		"spec":     map[string]any{"dataset": dataset, "validation": section},
	})
	if err != nil {
		return pipeline.Validation{}, err
	}
	p, err := pipeline.Parse(doc)
	if err != nil {
		var fieldErrs pipeline.Errors
		if !errors.As(err, &fieldErrs) {
			return pipeline.Validation{}, apierr.InvalidField("validation", "%v", err)
		}
		var violations []apierr.FieldViolation
		var msgs []string
		for _, fe := range fieldErrs {
			path := strings.TrimPrefix(fe.Path, "spec.")
			violations = append(violations, apierr.FieldViolation{Field: path, Description: fe.Message})
			msgs = append(msgs, path+": "+fe.Message)
		}
		return pipeline.Validation{}, apierr.Invalid("invalid validation section: "+strings.Join(msgs, "; "), violations...)
	}
	return p.Spec.Validation, nil
}
