// Package inference is Gyre's data plane: it loads verified model bundles
// and answers predictions through the Open Inference Protocol (KServe v2),
// over REST (/v2/...) and gRPC (inference.GRPCInferenceService), so that
// existing Triton and KServe clients work.
//
// What answers is a route per environment (production, staging) and model:
// a stable version, a canary that answers canary_weight percent of
// requests, and a shadow that scores a copy of every request after the
// answer has gone out, without ever changing it. The deployer sets routes
// through InferenceControlService; SetRoute loads every version first and
// then swaps the route atomically, so no request fails during a rollout.
// A bundle is downloaded once per digest, checked against its sha256 and
// every file's, and shared by every route that serves it.
//
// Every answer carries the model version and a prediction id. Each
// predicted row is logged to JetStream (gyre.inference.logged, batched) for
// the monitor; logging never makes a request wait: when its buffer is full
// or the broker is down, records are dropped and counted.
//
// See docs/inference.md for the endpoints, payloads and semantics.
package inference
