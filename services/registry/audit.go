package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gyreml/gyre/pkg/paging"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/server"
)

// auditRecord is one row of the append-only, hash-chained audit log.
type auditRecord struct {
	seq       int64
	time      time.Time
	actor     string
	action    string
	resource  string
	requestID string
	details   string
	prevHash  string
	hash      string
}

// chainHash is sha256 over the previous hash and every field, each
// length-prefixed so that no two different records hash alike.
func (r auditRecord) chainHash() string {
	h := sha256.New()
	for _, f := range []string{r.prevHash, strconv.FormatInt(r.seq, 10), r.time.UTC().Format(time.RFC3339Nano),
		r.actor, r.action, r.resource, r.requestID, r.details} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// appendAudit adds a record in the caller's transaction. Locking the chain's
// head row serialises appends, so seq has no gaps and each link is right.
func appendAudit(ctx context.Context, tx pgx.Tx, ri server.RequestInfo, action, resource string, details map[string]any) error {
	var r auditRecord
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE`).Scan(&r.seq, &r.prevHash); err != nil {
		return fmt.Errorf("lock audit head: %w", err)
	}
	detailJSON, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("audit details: %w", err)
	}
	r.seq++
	r.time = time.Now().UTC().Truncate(time.Microsecond) // Postgres keeps microseconds
	r.actor, r.action, r.resource, r.requestID, r.details = ri.Actor, action, resource, ri.ID, string(detailJSON)
	if r.actor == "" {
		r.actor = "system"
	}
	r.hash = r.chainHash()
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (seq, time, actor, action, resource, request_id, details, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, r.seq, r.time, r.actor, r.action, r.resource, r.requestID, r.details, r.prevHash, r.hash); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`, r.seq, r.hash); err != nil {
		return fmt.Errorf("advance audit head: %w", err)
	}
	return nil
}

const auditColumns = `seq, time, actor, action, resource, request_id, details, prev_hash, hash`

func scanAudit(row pgx.Row) (auditRecord, error) {
	var r auditRecord
	err := row.Scan(&r.seq, &r.time, &r.actor, &r.action, &r.resource, &r.requestID, &r.details, &r.prevHash, &r.hash)
	return r, err
}

func (s *Service) ListAuditRecords(ctx context.Context, req *registryv1.ListAuditRecordsRequest) (*registryv1.ListAuditRecordsResponse, error) {
	after, _, err := paging.IntKey(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetPageSize())
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE seq > $1 AND ($2 = '' OR resource = $2)
		ORDER BY seq LIMIT $3`, after, req.GetResource(), limit+1)
	if err != nil {
		return nil, err
	}
	records, err := collect(rows, scanAudit)
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListAuditRecordsResponse{}
	for i, r := range records {
		if i == limit {
			resp.NextPageToken = paging.Token(strconv.FormatInt(records[limit-1].seq, 10))
			break
		}
		pr := &registryv1.AuditRecord{Seq: r.seq, Time: timestamppb.New(r.time), Actor: r.actor, Action: r.action,
			Resource: r.resource, RequestId: r.requestID, PrevHash: r.prevHash, Hash: r.hash}
		var details map[string]any
		if json.Unmarshal([]byte(r.details), &details) == nil {
			pr.Details, _ = structpb.NewStruct(details)
		}
		resp.Records = append(resp.Records, pr)
	}
	return resp, nil
}

// VerifyAudit recomputes the chain: a changed row breaks its own hash, a
// deleted row breaks the sequence or the next link, a deleted tail no longer
// matches the head.
func (s *Service) VerifyAudit(ctx context.Context, _ *registryv1.VerifyAuditRequest) (*registryv1.VerifyAuditResponse, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	var headSeq int64
	var headHash string
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&headSeq, &headHash); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT `+auditColumns+` FROM audit_log ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &registryv1.VerifyAuditResponse{Ok: true, HeadHash: headHash}
	fail := func(seq int64, format string, args ...any) {
		if resp.Ok {
			resp.Ok, resp.FirstBadSeq, resp.Problem = false, seq, fmt.Sprintf(format, args...)
		}
	}
	prev := ""
	var want int64 = 1
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		resp.Records++
		switch {
		case r.seq != want:
			fail(want, "record %d is missing (next is %d)", want, r.seq)
		case r.prevHash != prev:
			fail(r.seq, "record %d does not link to the record before it", r.seq)
		case r.chainHash() != r.hash:
			fail(r.seq, "record %d was changed after it was written", r.seq)
		}
		prev, want = r.hash, r.seq+1
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if resp.Ok && (want-1 != headSeq || prev != headHash) {
		fail(want, "the log ends at record %d but the head says %d: records were removed", want-1, headSeq)
	}
	return resp, nil
}
