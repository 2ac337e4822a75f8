package inference

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/model"
)

// Handler serves one environment's Open Inference Protocol REST endpoints
// at /v2/..., for its own listener or to mount at a prefix that the mux
// strips:
//
//	GET  /v2                                         server metadata
//	GET  /v2/health/live, /v2/health/ready
//	GET  /v2/models/{model}[/versions/{v}]           model metadata
//	GET  /v2/models/{model}[/versions/{v}]/ready
//	POST /v2/models/{model}[/versions/{v}]/infer
func (s *Server) Handler(env string) http.Handler { return &restHandler{s: s, env: env} }

// Mount serves production at /v2/... and staging at /staging/v2/... on a
// mux (the gateway's).
func (s *Server) Mount(mux interface{ Handle(string, http.Handler) }) {
	prod := &restHandler{s: s, env: Production}
	staging := &restHandler{s: s, env: Staging, prefix: "/staging"}
	mux.Handle("/v2", prod)
	mux.Handle("/v2/", prod)
	mux.Handle("/staging/v2", staging)
	mux.Handle("/staging/v2/", staging)
}

type restHandler struct {
	s   *Server
	env string
	// prefix is cut from request paths before /v2.
	prefix string
}

// Shared, read-only header values.
var (
	jsonContentType = []string{"application/json"}
	allowPost       = []string{"POST"}
	allowGet        = []string{"GET, HEAD"}
)

func (h *restHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, h.prefix+"/v2")
	if !ok {
		h.notFound(w, r.URL.Path)
		return
	}
	if rest, ok := strings.CutPrefix(path, "/models/"); ok {
		name, rest, _ := strings.Cut(rest, "/")
		var version string
		if v, ok := strings.CutPrefix(rest, "versions/"); ok {
			version, rest, _ = strings.Cut(v, "/")
			if version == "" {
				h.notFound(w, r.URL.Path)
				return
			}
		}
		switch {
		case name == "":
			h.notFound(w, r.URL.Path)
		case rest == "infer":
			if r.Method != http.MethodPost {
				w.Header()["Allow"] = allowPost
				writeError(w, http.StatusMethodNotAllowed, "use POST to infer")
				return
			}
			h.infer(w, r, name, version)
		case rest == "ready":
			if h.get(w, r) {
				h.modelReady(w, name, version)
			}
		case rest == "":
			if h.get(w, r) {
				h.modelMetadata(w, name, version)
			}
		default:
			h.notFound(w, r.URL.Path)
		}
		return
	}
	switch path {
	case "", "/":
		if h.get(w, r) {
			writeJSONValue(w, http.StatusOK, map[string]any{"name": "gyre", "version": h.s.version, "extensions": []string{}})
		}
	case "/health/live":
		if h.get(w, r) {
			writeJSONValue(w, http.StatusOK, map[string]bool{"live": true})
		}
	case "/health/ready":
		if h.get(w, r) {
			code := http.StatusOK
			if !h.s.ready.Load() {
				code = http.StatusServiceUnavailable
			}
			writeJSONValue(w, code, map[string]bool{"ready": code == http.StatusOK})
		}
	default:
		h.notFound(w, r.URL.Path)
	}
}

func (h *restHandler) get(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header()["Allow"] = allowGet
	writeError(w, http.StatusMethodNotAllowed, "use GET")
	return false
}

func (h *restHandler) notFound(w http.ResponseWriter, path string) {
	writeError(w, http.StatusNotFound, "no endpoint "+path)
}

// restState is one request's reusable memory.
type restState struct {
	body []byte
	out  []byte
	req  inferRequest
}

// maxPooledBytes keeps a rare huge request's buffers out of the pool.
const maxPooledBytes = 1 << 20

var restStates = sync.Pool{New: func() any {
	return &restState{body: make([]byte, 0, 16<<10), out: make([]byte, 0, 16<<10)}
}}

func putRestState(st *restState) {
	if cap(st.body) > maxPooledBytes || cap(st.out) > maxPooledBytes {
		return
	}
	st.req.reset()
	restStates.Put(st)
}

// readBody reads the request body into buf, up to limit bytes.
func readBody(r *http.Request, buf []byte, limit int64) ([]byte, error) {
	buf = buf[:0]
	if n := r.ContentLength; n > 0 {
		if n > limit {
			return buf, errTooLarge
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, 0, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return buf[:0], err
		}
		return buf, nil
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf[:0], errTooLarge
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf[:0], err
		}
	}
}

var errTooLarge = errors.New("request body too large")

// infer answers POST .../infer.
func (h *restHandler) infer(w http.ResponseWriter, r *http.Request, name, version string) {
	start := time.Now()
	s := h.s
	rt, err := s.lookup(h.env, name)
	if err != nil {
		s.unanswered(h.env, nil, nil, start, http.StatusNotFound)
		writeError(w, http.StatusNotFound, publicMessage(err))
		return
	}
	t, err := rt.choose(version, r.Header.Get(HeaderRoutingKey))
	if err != nil {
		s.unanswered(h.env, rt, nil, start, http.StatusNotFound)
		writeError(w, http.StatusNotFound, publicMessage(err))
		return
	}
	st := restStates.Get().(*restState)
	defer putRestState(st)

	st.body, err = readBody(r, st.body, s.opts.MaxRequestBytes)
	if err == nil {
		err = parseInferRequest(st.body, &st.req)
	}
	if err != nil {
		// A body that is not a request says nothing about the version.
		code := http.StatusBadRequest
		msg := publicMessage(err)
		if errors.Is(err, errTooLarge) {
			code, msg = http.StatusRequestEntityTooLarge, "request body over "+strconv.FormatInt(s.opts.MaxRequestBytes, 10)+" bytes"
		} else if !isAPIError(err) {
			msg = "request body: " + err.Error()
		}
		s.unanswered(h.env, rt, t, start, code)
		writeError(w, code, msg)
		return
	}
	id := predictionID(st.req.id)
	outs, err := t.m.outputsOf(st.req.outputs)
	var rows []model.Row
	var preds []model.Prediction
	if err == nil {
		rows, err = t.m.rows(st.req.inputs)
	}
	if err == nil {
		preds, err = t.predict(rows)
	}
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr[HeaderModelVersion] = t.versionHeader
	hdr[HeaderPredictionID] = []string{id}
	if err != nil {
		code := httpStatus(err)
		if code == http.StatusInternalServerError {
			s.log.Error("inference failed", "model", rt.model, "version", t.version, "environment", rt.env, "err", err)
		}
		st.out = appendError(st.out[:0], publicMessage(err))
		hdr["Content-Length"] = []string{strconv.Itoa(len(st.out))}
		w.WriteHeader(code)
		_, _ = w.Write(st.out)
		s.answered(rt, t, version == "", id, start, nil, nil, code, err)
		return
	}
	a := inferAnswer{model: rt.model, version: t.versionStr, id: id, env: rt.env, role: t.role}
	st.out = appendInferResponse(st.out[:0], &a, outs, len(t.m.classes), preds)
	hdr["Content-Length"] = []string{strconv.Itoa(len(st.out))}
	_, _ = w.Write(st.out)
	s.answered(rt, t, version == "", id, start, rows, preds, http.StatusOK, nil)
}

func isAPIError(err error) bool {
	var ae *apierr.Error
	return errors.As(err, &ae)
}

func (h *restHandler) modelReady(w http.ResponseWriter, name, version string) {
	rt, err := h.s.lookup(h.env, name)
	if err == nil {
		_, err = rt.describe(version)
	}
	if err != nil {
		writeError(w, http.StatusNotFound, publicMessage(err))
		return
	}
	writeJSONValue(w, http.StatusOK, map[string]any{"name": name, "ready": true})
}

func (h *restHandler) modelMetadata(w http.ResponseWriter, name, version string) {
	rt, err := h.s.lookup(h.env, name)
	var t *target
	if err == nil {
		t, err = rt.describe(version)
	}
	if err != nil {
		writeError(w, http.StatusNotFound, publicMessage(err))
		return
	}
	writeJSONValue(w, http.StatusOK, metadataOf(rt, t))
}

// tensorMetadata and modelMetadata are the metadata endpoint's answer.
type tensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions"`
	Platform string           `json:"platform"`
	Inputs   []tensorMetadata `json:"inputs"`
	Outputs  []tensorMetadata `json:"outputs"`
	// Parameters carry what the protocol has no field for: the task and
	// the class order of the probabilities output.
	Parameters map[string]any `json:"parameters,omitempty"`
}

// metadataOf describes version t of a route: its inputs (one tensor each,
// shape [-1]; FP64 for numbers, BYTES for categories) and outputs.
func metadataOf(rt *route, t *target) modelMetadata {
	md := modelMetadata{Name: rt.model, Platform: t.m.manifest.Format, Parameters: map[string]any{"task": t.m.task}}
	for _, v := range rt.targets() {
		if !slices.Contains(md.Versions, v.versionStr) {
			md.Versions = append(md.Versions, v.versionStr)
		}
	}
	for _, in := range t.m.inputs {
		dt := dtFP64
		if in.Kind == model.Categorical {
			dt = dtBytes
		}
		md.Inputs = append(md.Inputs, tensorMetadata{Name: in.Name, Datatype: dt, Shape: []int64{-1}})
	}
	if t.m.task != model.Regression {
		md.Parameters["classes"] = t.m.classes
		md.Outputs = append(md.Outputs,
			tensorMetadata{Name: outputLabel, Datatype: dtBytes, Shape: []int64{-1}},
			tensorMetadata{Name: outputProbabilities, Datatype: dtFP64, Shape: []int64{-1, int64(len(t.m.classes))}})
	}
	md.Outputs = append(md.Outputs, tensorMetadata{Name: outputValue, Datatype: dtFP64, Shape: []int64{-1}})
	return md
}

func writeError(w http.ResponseWriter, code int, msg string) {
	body := appendError(nil, msg)
	w.Header()["Content-Type"] = jsonContentType
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func writeJSONValue(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
