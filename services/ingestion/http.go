package ingestion

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/pipeline"
	"github.com/gyreml/gyre/pkg/server"
	"github.com/gyreml/gyre/pkg/tabular"
)

// UploadPattern is the REST route of raw uploads: the body is the file.
const UploadPattern = "PUT /v1/datasets/{dataset}/versions:upload"

// ServeUpload streams a raw body (Content-Type says the format; gzip is
// recognised) through validation into a new version. Query: pipeline=NAME or
// validation=<YAML/JSON of spec.validation>.
func (s *Service) ServeUpload(w http.ResponseWriter, r *http.Request) {
	ctx := server.WithRequestInfo(r.Context(), server.RequestInfo{
		ID: r.Header.Get("X-Request-Id"), Actor: actorOf(r), Method: "UploadVersion (REST)",
	})
	dataset := r.PathValue("dataset")
	if err := pipeline.ValidName(dataset); err != nil {
		s.writeError(w, r, apierr.InvalidField("dataset", "%v", err))
		return
	}
	format, err := tabular.FormatFromContentType(r.Header.Get("Content-Type"))
	if err != nil {
		s.writeError(w, r, apierr.InvalidField("Content-Type", "%v", err))
		return
	}
	if r.ContentLength > s.cfg.MaxUploadBytes {
		s.writeError(w, r, apierr.TooLarge("upload of %d bytes exceeds the maximum of %d bytes", r.ContentLength, s.cfg.MaxUploadBytes))
		return
	}
	resp, err := s.Ingest(ctx, Upload{Dataset: dataset, Format: format, Body: r.Body,
		Pipeline: r.URL.Query().Get("pipeline"), Validation: r.URL.Query().Get("validation")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := protojson.Marshal(resp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := apierr.Status(r.Context(), s.log, err)
	httpStatus := 0
	if st.Code() == codes.ResourceExhausted {
		httpStatus = http.StatusRequestEntityTooLarge
	}
	server.WriteErrorStatus(w, r, st, httpStatus)
}

func actorOf(r *http.Request) string {
	if a := r.Header.Get("X-Gyre-Actor"); a != "" && len(a) <= 256 {
		return a
	}
	return "anonymous"
}
