package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/zdps/zdps/pkg/dps"
	"strconv"

	"github.com/zdps/zdps/internal/store"
)

// Problem kinds Verify reports.
const (
	ProblemEdited    = "edited"    // an entry's hash or link does not match its content
	ProblemDeleted   = "deleted"   // a sequence number is missing
	ProblemInserted  = "inserted"  // an entry that no sealer wrote (a foreign key, a sequence out of place, past the head)
	ProblemHead      = "head"      // the head's signature does not verify, or it does not match the chain's end
	ProblemTruncated = "truncated" // the chain ends before the signed head
)

// ErrTampered is returned by Verify when it found a problem.
var ErrTampered = dps.ErrAuditTampered

// Problem is the first place where the trail does not verify.
type Problem = dps.AuditProblem

// Report is what Verify found.
type Report = dps.AuditReport

// verifyPage bounds one read transaction of Verify.
const verifyPage = 2000

// Verify walks the chain from the checkpoint to the signed head. It
// returns the report, and the report's Problem as the error when there is
// one (errors.Is ErrTampered).
func (l *Log) Verify(ctx context.Context) (*Report, error) {
	var cp signedPoint
	var hasCP bool
	rep := &Report{}
	err := l.b.View(ctx, func(tx store.Tx) error {
		var err error
		if hasCP, err = getJSON(ctx, tx, BucketState, keyCheckpoint, &cp); err != nil {
			return err
		}
		pend, err := tx.Scan(ctx, BucketPending, "", "", 0)
		rep.Pending = len(pend)
		return err
	})
	if err != nil {
		return nil, err
	}
	prevSeq, prevHash := uint64(0), zeroHash
	if hasCP {
		if err := l.signer.Verify(pointMessage("checkpoint", &cp), cp.Sig); err != nil {
			return l.fail(rep, &Problem{Kind: ProblemHead, Seq: cp.Seq, Detail: "the checkpoint's signature does not verify"})
		}
		prevSeq, prevHash = cp.Seq, cp.Hash
	}
	rep.From = prevSeq + 1
	// Each page is read with the head of its own snapshot: sealing writes
	// entries and head together, so within one snapshot no entry lies
	// past the head, however the trail grows while Verify walks it.
	head := signedPoint{Seq: prevSeq, Hash: prevHash}
	var headSig []byte
	headStored := false
	readPage := func(after string) ([]store.Item, error) {
		var page []store.Item
		err := l.b.View(ctx, func(tx store.Tx) error {
			var h signedPoint
			ok, err := getJSON(ctx, tx, BucketState, keyHead, &h)
			if err != nil {
				return err
			}
			if ok {
				head, headStored = h, true
			}
			page, err = tx.Scan(ctx, BucketChain, "", after, verifyPage)
			return err
		})
		return page, err
	}
	after := ""
	for {
		page, err := readPage(after)
		if err != nil {
			return nil, err
		}
		if headStored && (headSig == nil || string(head.Sig) != string(headSig)) {
			if err := l.signer.Verify(pointMessage("head", &head), head.Sig); err != nil {
				return l.fail(rep, &Problem{Kind: ProblemHead, Seq: head.Seq, Detail: "the head's signature does not verify"})
			}
			headSig = head.Sig
		}
		rep.To = head.Seq
		for _, it := range page {
			seq, err := strconv.ParseUint(it.Key, 10, 64)
			if err != nil || seqKey(seq) != it.Key {
				return l.fail(rep, &Problem{Kind: ProblemInserted, Seq: prevSeq + 1, Detail: fmt.Sprintf("key %.40q is no sequence number", it.Key)})
			}
			if seq <= prevSeq {
				return l.fail(rep, &Problem{Kind: ProblemInserted, Seq: seq, Detail: "an entry before the checkpoint"})
			}
			if seq > head.Seq {
				return l.fail(rep, &Problem{Kind: ProblemInserted, Seq: seq, Detail: fmt.Sprintf("an entry past the signed head (%d)", head.Seq)})
			}
			var e Entry
			if err := json.Unmarshal(it.Value, &e); err != nil {
				return l.fail(rep, &Problem{Kind: ProblemEdited, Seq: seq, Detail: "the entry is not valid JSON"})
			}
			id := eventID(e.Event)
			if seq != prevSeq+1 {
				return l.fail(rep, &Problem{Kind: ProblemDeleted, Seq: prevSeq + 1, Detail: fmt.Sprintf("sequences %d to %d are missing", prevSeq+1, seq-1)})
			}
			switch {
			case e.Seq != seq:
				return l.fail(rep, &Problem{Kind: ProblemEdited, Seq: seq, EventID: id, Detail: "the entry's sequence differs from its key"})
			case e.Hash != entryHash(seq, e.Prev, e.Event):
				return l.fail(rep, &Problem{Kind: ProblemEdited, Seq: seq, EventID: id, Detail: "the event does not match its hash"})
			case e.Prev != prevHash:
				return l.fail(rep, &Problem{Kind: ProblemEdited, Seq: seq, EventID: id, Detail: "the entry does not link to its predecessor (an entry was replaced or inserted here)"})
			}
			prevSeq, prevHash = seq, e.Hash
			rep.Entries++
		}
		if len(page) < verifyPage {
			break
		}
		after = page[len(page)-1].Key
	}
	if prevSeq != head.Seq {
		return l.fail(rep, &Problem{Kind: ProblemTruncated, Seq: prevSeq + 1, Detail: fmt.Sprintf("the chain ends at %d, the signed head is %d", prevSeq, head.Seq)})
	}
	if prevHash != head.Hash {
		return l.fail(rep, &Problem{Kind: ProblemHead, Seq: head.Seq, Detail: "the last entry's hash differs from the signed head's"})
	}
	return rep, nil
}

func (l *Log) fail(rep *Report, p *Problem) (*Report, error) {
	rep.Problem = p
	return rep, p
}

func eventID(raw json.RawMessage) string {
	var e struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &e) != nil || len(e.ID) > 64 {
		return ""
	}
	return e.ID
}
