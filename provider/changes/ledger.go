// Package changes is the change ledger: what AWS announced as changed
// (secrets, parameters, roles), in the order coffer learned of it, with the
// canary's proof that announcements arrive, and the rule by which a node
// answers a mount from its cache because nothing it holds has changed. It
// holds no value and does no I/O: the consumer (coffer-controller events)
// keeps a Book and publishes its Ledger in a ConfigMap, and every node
// feeds what its watch sees to a Tracker.
//
// Order comes from sequence numbers the consumer gives entries as it
// receives them, never from the time an event says it was made, so an
// event delayed, duplicated, reordered or forged can only name something
// once more, which costs a read and never serves an older value. Times
// are used for three things, each with a stated bound: the canary's
// write time against a read's (the clocks of the consumer and the nodes
// may differ by at most the configured skew), ages (of the proof and of
// values), and retention.
package changes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// LedgerKey is the ConfigMap data key that holds the ledger's JSON.
const LedgerKey = "ledger.json"

// Limits of a ledger, checked before it is parsed (Decode) and kept by a
// Book. A ConfigMap holds at most 1 MiB, and every node receives the whole
// object on each update, so the ledger stays well below that.
const (
	// MaxLedgerBytes bounds the encoded ledger.
	MaxLedgerBytes = 512 << 10
	// MaxEntries bounds the entries: at the bound the oldest are dropped
	// and the floor raised past them.
	MaxEntries = 2048
	// MaxNameBytes bounds one entry's name (a secret's ARN is at most 2048
	// characters; a parameter's name 2048 with its path).
	MaxNameBytes = 2048
	// maxCovers bounds the account and region pairs a ledger covers.
	maxCovers = 64
	// formatVersion is the ledger's format.
	formatVersion = 1
)

// Kind is what an entry names.
type Kind string

// The kinds of entries.
const (
	KindSecret    Kind = "secret"
	KindParameter Kind = "parameter"
	KindRole      Kind = "role"
)

// Entry records that AWS announced a change to one subject.
type Entry struct {
	// Seq orders entries: larger is later learned. Sequences are unique
	// within one ledger object (see Position).
	Seq uint64 `json:"s"`
	Subject
	// At is when the consumer received the announcement (its clock).
	At time.Time `json:"t"`
}

// Coverage is an account and region whose secret and parameter
// announcements reach the ledger (the queue's, where the rules are).
type Coverage struct {
	Account string `json:"account"`
	Region  string `json:"region"`
}

// Proof is the canary's latest round trip: a change the consumer made in
// AWS itself, with a nonce no one else knew, seen back through the
// pipeline.
type Proof struct {
	// Written is when the consumer started writing the canary (its clock):
	// every announcement made before it had the same pipeline to travel.
	Written time.Time `json:"written"`
	// Seen is when the consumer saw the last of the canary's
	// announcements come back.
	Seen time.Time `json:"seen"`
}

// Ledger is what the consumer publishes and the nodes read.
type Ledger struct {
	Version int `json:"version"`
	// Seq is the last sequence given (at least every entry's).
	Seq uint64 `json:"seq"`
	// Floor: entries with a sequence at or below it may have been
	// dropped (retention, the entry bound). A value read before the floor
	// cannot be shown unchanged.
	Floor uint64 `json:"floor"`
	// Covers are the accounts and regions whose secrets and parameters the
	// ledger announces.
	Covers []Coverage `json:"covers"`
	// Proof is the newest canary round trip (zero: none yet).
	Proof Proof `json:"proof"`
	// Published is when the consumer wrote this ledger (its clock).
	Published time.Time `json:"published"`
	// Entries are in increasing Seq, at most one per subject.
	Entries []Entry `json:"entries"`
}

// Encode returns the ledger's JSON, refusing one over MaxLedgerBytes.
func (l *Ledger) Encode() ([]byte, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encoding the change ledger: %w", err)
	}
	if len(b) > MaxLedgerBytes {
		return nil, fmt.Errorf("the change ledger is %d bytes, over its limit of %d", len(b), MaxLedgerBytes)
	}
	return b, nil
}

// Decode parses and validates a ledger: its size is checked before it is
// parsed, and every field after. Errors never quote the input.
func Decode(data []byte) (*Ledger, error) {
	if len(data) > MaxLedgerBytes {
		return nil, fmt.Errorf("the change ledger is %d bytes, over the limit of %d", len(data), MaxLedgerBytes)
	}
	var l Ledger
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, errors.New("the change ledger is not valid JSON of the ledger's format")
	}
	if dec.More() {
		return nil, errors.New("the change ledger has data after its JSON object")
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

func (l *Ledger) validate() error {
	switch {
	case l.Version != formatVersion:
		return fmt.Errorf("the change ledger's version is %d; this coffer reads version %d", l.Version, formatVersion)
	case l.Floor > l.Seq:
		return errors.New("the change ledger's floor is past its last sequence")
	case len(l.Entries) > MaxEntries:
		return fmt.Errorf("the change ledger has %d entries, over the limit of %d", len(l.Entries), MaxEntries)
	case len(l.Covers) > maxCovers:
		return fmt.Errorf("the change ledger covers %d account and region pairs, over the limit of %d", len(l.Covers), maxCovers)
	}
	last := l.Floor
	for i, e := range l.Entries {
		if e.Seq <= last || e.Seq > l.Seq {
			return fmt.Errorf("the change ledger's entry %d is out of sequence", i)
		}
		last = e.Seq
		if err := e.Subject.validate(); err != nil {
			return fmt.Errorf("the change ledger's entry %d: %w", i, err)
		}
	}
	for i, c := range l.Covers {
		if !validAccount(c.Account) || !validRegion(c.Region) {
			return fmt.Errorf("the change ledger's coverage %d is not an account id and a region", i)
		}
	}
	return nil
}
