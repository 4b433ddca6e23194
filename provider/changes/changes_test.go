package changes

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

const (
	acct   = "111122223333"
	region = "eu-west-1"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func TestSubjects(t *testing.T) {
	sec := func(name string) Subject { return Subject{Kind: KindSecret, Account: acct, Region: region, Name: name} }
	for _, tc := range []struct {
		what string
		got  []Subject
		want []Subject
	}{
		{"secret by name", Secrets(acct, region, "db/password"), []Subject{sec("db/password")}},
		{"secret by full ARN: both readings", Secrets("999999999999", "us-east-1", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/password-AbC123"),
			[]Subject{sec("db/password"), sec("db/password-AbC123")}},
		{"secret by partial ARN", Secrets("", "", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/password"), []Subject{sec("db/password")}},
		{"secret ARN of another service", Secrets(acct, region, "arn:aws:ssm:eu-west-1:111122223333:parameter/x"), nil},
		{"secret without account", Secrets("", region, "db"), nil},
		{"parameter with and without slash", Parameter(acct, region, "/app/db"), []Subject{{Kind: KindParameter, Account: acct, Region: region, Name: "app/db"}}},
		{"parameter by ARN", Parameter("", "", "arn:aws:ssm:eu-west-1:111122223333:parameter/app/db"), []Subject{{Kind: KindParameter, Account: acct, Region: region, Name: "app/db"}}},
		{"role ARN with path, any case", Role("", "arn:aws:iam::111122223333:role/team/App-Role"), []Subject{{Kind: KindRole, Account: acct, Name: "app-role"}}},
		{"role name in account", Role(acct, "APP-role"), []Subject{{Kind: KindRole, Account: acct, Name: "app-role"}}},
		{"not a role ARN", Role("", "arn:aws:iam::111122223333:user/bob"), nil},
	} {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := Ledger{Version: 1, Seq: 3, Floor: 1, Covers: []Coverage{{acct, region}}, Entries: []Entry{{Seq: 2, Subject: Secrets(acct, region, "a")[0]}}}
	enc := func(mod func(*Ledger)) []byte {
		l := good
		l.Entries = append([]Entry(nil), good.Entries...)
		mod(&l)
		b, _ := json.Marshal(l)
		return b
	}
	if _, err := Decode(enc(func(*Ledger) {})); err != nil {
		t.Fatalf("a valid ledger: %v", err)
	}
	for _, tc := range []struct {
		what string
		data []byte
	}{
		{"too large, before parsing", []byte(`{"x":"` + strings.Repeat("a", MaxLedgerBytes) + `"}`)},
		{"not JSON", []byte("secret-value-123")},
		{"unknown field", []byte(`{"version":1,"seq":0,"floor":0,"covers":[],"proof":{"written":"0001-01-01T00:00:00Z","seen":"0001-01-01T00:00:00Z"},"published":"0001-01-01T00:00:00Z","entries":[],"x":1}`)},
		{"trailing data", append(enc(func(*Ledger) {}), []byte(" {}")...)},
		{"another version", enc(func(l *Ledger) { l.Version = 2 })},
		{"floor past seq", enc(func(l *Ledger) { l.Floor = 9 })},
		{"entry at the floor", enc(func(l *Ledger) { l.Entries[0].Seq = 1 })},
		{"entry past seq", enc(func(l *Ledger) { l.Entries[0].Seq = 4 })},
		{"entries out of order", enc(func(l *Ledger) {
			l.Entries = append(l.Entries, Entry{Seq: 2, Subject: Secrets(acct, region, "b")[0]})
		})},
		{"unknown kind", enc(func(l *Ledger) { l.Entries[0].Kind = "user" })},
		{"bad coverage", enc(func(l *Ledger) { l.Covers[0].Account = "x" })},
	} {
		_, err := Decode(tc.data)
		if err == nil {
			t.Errorf("%s: accepted", tc.what)
			continue
		}
		if strings.Contains(err.Error(), "secret-value") || len(err.Error()) > 200 {
			t.Errorf("%s: the error quotes the input: %v", tc.what, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b := NewBook(nil, []Coverage{{acct, region}}, time.Hour, clocktesting.NewFakePassiveClock(t0))
	b.Add(Secrets(acct, region, "a")...)
	b.Prove(t0, t0)
	l := b.Ledger()
	seed, _ := l.Encode()
	f.Add(seed)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes within the bounds and decodes the same.
		again, err := l.Encode()
		if err != nil {
			t.Fatalf("a decoded ledger does not encode: %v", err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("a re-encoded ledger does not decode: %v", err)
		}
	})
}

func TestBook(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	b := NewBook(nil, []Coverage{{acct, region}}, 30*time.Minute, clk)
	a, c := Secrets(acct, region, "a")[0], Parameter(acct, region, "/c")[0]
	b.Add(a, c)
	clk.SetTime(t0.Add(time.Minute))
	b.Add(a) // replaces a's entry: one per subject, the latest sequence
	l := b.Ledger()
	if l.Seq != 3 || len(l.Entries) != 2 || l.Entries[0].Subject != c || l.Entries[1].Seq != 3 || l.Floor != 0 {
		t.Fatalf("after three announcements: %+v", l)
	}
	if n := b.Add(Subject{Kind: KindSecret, Name: "no account"}); n != 0 {
		t.Errorf("an invalid subject was recorded")
	}
	// Retention drops c (received at t0) and raises the floor past it.
	clk.SetTime(t0.Add(30*time.Minute + time.Second))
	l = b.Ledger()
	if len(l.Entries) != 1 || l.Floor != 2 || l.Entries[0].Subject != a {
		t.Fatalf("after retention: %+v", l)
	}
	// A new consumer continues the sequence.
	b2 := NewBook(&l, []Coverage{{acct, region}}, 30*time.Minute, clk)
	b2.Add(c)
	if l2 := b2.Ledger(); l2.Seq != 4 || l2.Floor != 2 {
		t.Fatalf("continued ledger: %+v", l2)
	}
	// Proofs only move forward.
	b2.Prove(t0.Add(time.Minute), t0.Add(2*time.Minute))
	b2.Prove(t0, t0.Add(3*time.Minute))
	if p := b2.Ledger().Proof; !p.Written.Equal(t0.Add(time.Minute)) {
		t.Errorf("an older canary replaced a newer proof: %+v", p)
	}
}

// TestBookBoundsHostileFlood: a flood of distinct forged subjects with the
// longest names keeps the ledger within its bounds; what is dropped raises
// the floor.
func TestBookBoundsHostileFlood(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	b := NewBook(nil, []Coverage{{acct, region}}, time.Hour, clk)
	long := strings.Repeat("x", MaxNameBytes-8)
	for i := range 3 * MaxEntries {
		b.Add(Subject{Kind: KindParameter, Account: acct, Region: region, Name: fmt.Sprintf("%s%08d", long, i)})
	}
	l := b.Ledger()
	enc, err := l.Encode()
	if err != nil {
		t.Fatalf("the flooded ledger does not encode: %v", err)
	}
	if len(l.Entries) > MaxEntries || len(enc) > MaxLedgerBytes || l.Floor == 0 || l.Floor >= l.Entries[0].Seq {
		t.Fatalf("flooded ledger: %d entries, %d bytes, floor %d, first entry %d", len(l.Entries), len(enc), l.Floor, l.Entries[0].Seq)
	}
	for i := range 3 * MaxEntries {
		b.Add(Subject{Kind: KindParameter, Account: acct, Region: region, Name: fmt.Sprint(i)})
	}
	if l := b.Ledger(); len(l.Entries) > MaxEntries {
		t.Fatalf("%d short entries, over the bound of %d", len(l.Entries), MaxEntries)
	}
}
