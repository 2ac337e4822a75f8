package monitor

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Webhook headers.
const (
	HeaderSignature = "X-Gyre-Signature"
	HeaderEvent     = "X-Gyre-Event"
	HeaderDelivery  = "X-Gyre-Delivery"
)

// deliveryPoll is the delivery loop's safety poll (it is woken on commit).
const deliveryPoll = time.Second

// Sign is the X-Gyre-Signature of a webhook body: "sha256=" and the hex
// HMAC-SHA256 of the body under the signing secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is body's signature under secret,
// comparing in constant time. Receivers written in Go can call it.
func VerifySignature(secret, body []byte, header string) bool {
	want := Sign(secret, body)
	return hmac.Equal([]byte(want), []byte(strings.TrimSpace(header)))
}

// RunDeliveries sends queued alert notifications to the sinks until ctx
// ends, each alert's in order to a sink (resolved after fired): each is
// claimed for a while, sent, and marked delivered, retried
// later with exponential backoff, or failed after MaxAttempts (or at once on
// a 4xx other than 408 and 429, which retrying cannot fix). A process that
// dies mid-send leaves the claim to expire, and the delivery is sent again:
// receivers dedupe on X-Gyre-Delivery.
func (s *Service) RunDeliveries(ctx context.Context) error {
	t := time.NewTicker(deliveryPoll)
	defer t.Stop()
	for {
		for {
			done, err := s.deliverNext(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("alert delivery", "err", err)
			}
			if !done || err != nil || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-t.C:
		}
	}
}

type delivery struct {
	id       int64
	alert    string
	event    string
	sink     string
	format   string
	body     []byte
	attempts int
}

func (s *Service) deliverNext(ctx context.Context) (bool, error) {
	var d delivery
	// The claim outlives one request, so another replica does not send it meanwhile.
	claim := 2*s.cfg.Timeout + time.Second
	err := s.pool.QueryRow(ctx, `UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = now() + $1::interval
		WHERE id = (SELECT id FROM deliveries d WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
			AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.alert = d.alert AND e.sink = d.sink AND e.id < d.id
				AND e.delivered_at IS NULL AND e.failed_at IS NULL)
			ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id, alert::text, event, sink, format, body, attempts`, claim).Scan(&d.id, &d.alert, &d.event, &d.sink, &d.format, &d.body, &d.attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var sink *Sink
	for i := range s.cfg.Sinks {
		if s.cfg.Sinks[i].id() == d.sink {
			sink = &s.cfg.Sinks[i]
		}
	}
	if sink == nil {
		_, err := s.pool.Exec(ctx, `UPDATE deliveries SET failed_at = now(), last_error = 'the sink is no longer configured' WHERE id = $1`, d.id)
		return true, err
	}
	retry, sendErr := s.send(ctx, sink, d)
	switch {
	case sendErr == nil:
		s.metrics.deliveries.WithLabelValues("delivered").Inc()
		_, err = s.pool.Exec(ctx, `UPDATE deliveries SET delivered_at = now(), last_error = '' WHERE id = $1`, d.id)
	case !retry || d.attempts >= s.cfg.MaxAttempts:
		s.metrics.deliveries.WithLabelValues("failed").Inc()
		s.log.Warn("alert delivery failed for good", "delivery", d.id, "alert", d.alert, "sink", d.sink, "attempts", d.attempts, "err", sendErr)
		_, err = s.pool.Exec(ctx, `UPDATE deliveries SET failed_at = now(), last_error = $2 WHERE id = $1`, d.id, sendErr.Error())
	default:
		s.metrics.deliveries.WithLabelValues("retried").Inc()
		wait := s.backoff(d.attempts)
		s.log.Info("alert delivery will be retried", "delivery", d.id, "sink", d.sink, "attempts", d.attempts, "retry_in", wait, "err", sendErr)
		_, err = s.pool.Exec(ctx, `UPDATE deliveries SET next_attempt_at = now() + $2::interval, last_error = $3 WHERE id = $1`, d.id, wait, sendErr.Error())
	}
	return true, err
}

// backoff is RetryBackoff doubled per failed attempt, at most MaxBackoff.
func (s *Service) backoff(attempts int) time.Duration {
	d := s.cfg.RetryBackoff
	for i := 1; i < attempts && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

// send POSTs one delivery; retry says whether a failure may pass.
func (s *Service) send(ctx context.Context, sink *Sink, d delivery) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sink.URL, bytes.NewReader(d.body))
	if err != nil {
		return false, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gyre-monitor")
	req.Header.Set(HeaderEvent, d.event)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(d.id, 10))
	if len(s.cfg.SigningSecret) > 0 {
		req.Header.Set(HeaderSignature, Sign(s.cfg.SigningSecret, d.body))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		// The error names the URL, which may hold a token: keep only its kind.
		return true, fmt.Errorf("post to sink %s: %s", d.sink, transportError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests
	return retry, fmt.Errorf("sink %s answered %s", d.sink, resp.Status)
}

func transportError(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap().Error()
	}
	return "request failed"
}
