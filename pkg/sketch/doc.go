// Package sketch holds the small, mergeable summaries a dataset profile is
// built from, each fed one value at a time in a single pass:
//
//   - HLL: HyperLogLog distinct count (precision 14, 0.81% standard error).
//   - KLL: quantiles and ranks (k=200: normalised rank error under 1.65%).
//   - TopK: Misra-Gries heavy hitters (counts off by at most 2N/capacity).
//   - Moments: count, mean, variance, min and max (exact, Chan's merge).
//
// Every sketch merges with another of its kind, so summaries of parts make
// the summary of the whole, and serialises to a compact binary form
// (MarshalBinary) that JSON carries as base64 (Moments, five numbers, is a
// readable JSON object); a stored sketch decodes to exactly the state that
// was saved. Hashing and the KLL coin flips use fixed seeds: the same input
// in the same order gives the same bytes in every process. No sketch is
// safe for concurrent use while it is updated.
package sketch
